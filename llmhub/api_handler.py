"""The API's own request path: `/v1/` is served by a Django ASGI handler with a short middleware list
(settings.LLMHUB_API_MIDDLEWARE), the pages by Django's usual one (settings.MIDDLEWARE).

Every middleware a request passes costs CPU, and under ASGI each MiddlewareMixin class costs two
thread hops (its process_request and process_response run through sync_to_async, one at a time on
the one thread all such calls share). The API is called by programs with an API key, and answers
JSON or an event stream, so most of the pages' middleware has nothing to do on it:

- sessions, CSRF, authentication, messages, axes, the first-run detour: an API request is
  identified by its key (gateway.keys), never by a cookie, so there is no session to load, no
  cookie-borne request to forge, no signed-in user, no flash message and no sign-in form to lock;
  the first-run detour already let /v1/ through. A /v1/ answer sets no cookie.
- Content-Security-Policy, X-Frame-Options, htmx: they govern documents a browser renders and
  scripts it runs; JSON and event streams are never rendered as a page.
- WhiteNoise: it serves /static/ only.

What stays (LLMHUB_API_MIDDLEWARE): the request id, metrics and access log (ops.middleware), CORS
when LLMHUB_CORS_ORIGINS is set, and the two Django middleware whose work applies to any response:
SecurityMiddleware (https redirect, HSTS, nosniff) and CommonMiddleware (the allowed-hosts check,
Content-Length), both run on the event loop: they do no I/O, so the thread hop buys nothing. The
ASGI wrappers in llmhub/asgi.py (JSON errors, body limit, own address, start-up guard,
maintenance) stay around both handlers.

Django builds a handler's middleware chain from settings.MIDDLEWARE alone; ApiHandler builds the
same chain from its own list, and refuses at start-up a middleware that would put a thread hop back.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponseBase
from django.middleware import common, security
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string

PREFIX = "/v1/"
# What Django calls besides the middleware itself: none on the API's list (ApiHandler does not call them).
HOOKS = ("process_view", "process_exception", "process_template_response")


class ApiHandler(ASGIHandler):
    """Django's ASGI handler (request, signals, streaming, exception responses) with the API's
    middleware. The hooks it does not call (process_view, process_exception,
    process_template_response) no middleware on the list has."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        handler = convert_exception_to_response(self._get_response_async)
        for path in reversed(settings.LLMHUB_API_MIDDLEWARE):
            middleware = import_string(path)(handler)
            hooks = [name for name in HOOKS if hasattr(middleware, name)]
            hops = isinstance(middleware, MiddlewareMixin) and not isinstance(middleware, OnTheLoop)
            if not iscoroutinefunction(middleware) or hooks or hops:
                raise ImproperlyConfigured(f"{path} cannot be on the API's path: it is not async-only.")
            handler = convert_exception_to_response(middleware)
        self._middleware_chain = handler


class ByPath:
    """`/v1/` to the API's handler, everything else to the pages'."""

    def __init__(self, api: Any, pages: Any) -> None:
        self.api, self.pages = api, pages

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        app = self.api if scope["path"].startswith(PREFIX) else self.pages
        await app(scope, receive, send)


class OnTheLoop:
    """A MiddlewareMixin's process_request and process_response called on the event loop, not
    through sync_to_async: only for middleware that does no I/O."""

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.process_request(request) or await self.get_response(request)
        return self.process_response(request, response)


class SecurityMiddleware(OnTheLoop, security.SecurityMiddleware):
    """Django's: the https redirect and HSTS (LLMHUB_HTTPS), X-Content-Type-Options: nosniff."""


class CommonMiddleware(OnTheLoop, common.CommonMiddleware):
    """Django's: a Host not in ALLOWED_HOSTS refused (400), Content-Length on whole answers."""
