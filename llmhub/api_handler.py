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

Django's handler also sends request_started and request_finished through sync_to_async: two hops a
request to a thread of the request's own, started for them (and a second thread to join it). Their
receivers (reset_queries, close_old_connections, close_caches) act on the connections and caches of
the thread they run on, and the API does its database work on the server's pooled threads through
database_sync_to_async, which closes their connections when due itself. So ApiHandler sends
request_finished on the request's thread only when a call of the request ran there (a thread-sensitive
sync_to_async: a provider failure noted, a fallback switch): then it has connections to close.
request_started is not sent: on a request's fresh thread its receivers have nothing to reset or close.

What a request only describes (its access line and metrics, its run's line and metrics, a 4xx's
warning line) is written once the answer's last byte is handed to the server (llmhub/afterwards.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
from typing import Any

from asgiref.sync import AsyncToSync, SyncToAsync, ThreadSensitiveContext, iscoroutinefunction, sync_to_async
from django import db
from django.conf import settings
from django.core import cache, signals
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponseBase
from django.middleware import common, security
from django.urls import ResolverMatch, URLPattern, URLResolver, get_resolver, set_script_prefix, set_urlconf
from django.utils.deprecation import MiddlewareMixin
from django.utils.log import log_response
from django.utils.module_loading import import_string

from llmhub import afterwards, conf
from llmhub.api_request import ApiRequest, script_prefix

logger = logging.getLogger(__name__)

PREFIX = "/v1/"
# What Django calls besides the middleware itself: none on the API's list (ApiHandler does not call them).
HOOKS = ("process_view", "process_exception", "process_template_response")
# Django's receivers of request_started and request_finished: ApiHandler skips these, no others.
# (reset_urlconf undoes a urlconf a middleware set on the request: none on the API's list does.)
SKIPPABLE = {db.reset_queries, db.close_old_connections, cache.close_caches, base.reset_urlconf}
# ResolverMatch's arguments, all of them.
MATCH_FIELDS = (
    *("func", "args", "kwargs", "url_name", "app_names", "namespaces"),
    *("route", "tried", "captured_kwargs", "extra_kwargs"),
)


class ApiHandler(ASGIHandler):
    """Django's ASGI handler (request, streaming, exception responses) with the API's middleware,
    and request_started and request_finished sent only where they have work (see the module's
    docstring). The hooks it does not call (process_view, process_exception,
    process_template_response) no middleware on the list has."""

    request_class = ApiRequest

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
        receivers = {
            receiver
            for signal in (signals.request_started, signals.request_finished)
            for group in signal._live_receivers(None)  # (sync, async)
            for receiver in group
        }
        self.signals_skippable = receivers <= SKIPPABLE

    def resolve_request(self, request: HttpRequest) -> ResolverMatch:
        """Django's, except that the API's fixed paths are looked up, not resolved: Django tries
        every page's pattern before /v1/'s (~0.2 ms a request). Any other path (an id in it, an
        unknown one answered by the JSON 404) is resolved as before."""
        found = (
            None
            if hasattr(request, "urlconf")
            else fixed_routes(get_resolver(conf.setting("ROOT_URLCONF"))).get(request.path_info)
        )
        if found is None:
            return super().resolve_request(request)
        request.resolver_match = match = ResolverMatch(**found)
        return match

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        """Django's, except that a 4xx answer's warning line (`Not Found: /v1/x`) is written on the
        loop, after the answer is sent (llmhub/afterwards.py), as the access log line is, not through
        a thread hop (~0.2 ms of CPU: a wrong key, a rate limit, a bad body are answers a misbehaving
        client repeats). A 5xx's line still takes the hop, as in Django: its handlers may send mail
        (Django's mail_admins)."""
        set_urlconf(conf.setting("ROOT_URLCONF"))
        response = await self._middleware_chain(request)
        response._resource_closers.append(request.close)
        if response.status_code >= 500:
            log = sync_to_async(log_response, thread_sensitive=False)
            await log("%s: %s", response.reason_phrase, request.path, response=response, request=request)
        elif response.status_code >= 400:
            line = functools.partial(log_response, response=response, request=request)
            afterwards.later(line, "%s: %s", response.reason_phrase, request.path)
        return response

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if not self.signals_skippable or getattr(AsyncToSync.executors, "current", None):
            # Another receiver, or called through async_to_sync (thread-sensitive calls then run on
            # the caller's thread, whose connections outlive the request): Django's way, signals sent.
            await super().__call__(scope, receive, send)
            return
        async with ThreadSensitiveContext():
            with afterwards.collecting() as after_the_answer:
                try:
                    response = await self.handle_without_signals(scope, receive, send)
                finally:  # the answer's last byte is written (or the request ended without one)
                    after_the_answer.run()
            # Django's last step is response.close() on the request's thread: the response's closers,
            # then request_finished, which has work there only if a call of the request ran there.
            ran_there = SyncToAsync.thread_sensitive_context.get() in SyncToAsync.context_to_thread_executor
            if ran_there and response is not None:
                await sync_to_async(response.close)()
            elif ran_there:
                await sync_to_async(signals.request_finished.send)(sender=self.__class__)
            elif response is not None:
                _run_closers(response)

    async def read_body(self, receive: Any) -> io.BytesIO:
        """Django's, in memory rather than in a temporary file that rolls over to disk past
        FILE_UPLOAD_MAX_MEMORY_SIZE: an API body is read whole into memory anyway (request.body; at
        most LLMHUB_API_MAX_BODY_BYTES, llmhub/body_limit.py)."""
        parts = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise RequestAborted()  # the client left before its body was read
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                return io.BytesIO(parts[0] if len(parts) == 1 else b"".join(parts))

    async def handle_without_signals(self, scope: dict, receive: Any, send: Any) -> HttpResponseBase | None:
        """Django's ASGIHandler.handle without request_started and request_finished; the response
        sent, if the client did not go away first."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return None
        set_script_prefix(script_prefix(scope))
        request, response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(response, send)
            return response
        try:
            return await self.answer(request, receive, send)
        finally:
            body_file.close()

    async def answer(self, request: HttpRequest, receive: Any, send: Any) -> HttpResponseBase | None:
        """The response, made and sent in this task while a task of its own listens for the client
        going away, which cancels it as Django's handler cancels the task it answers in (here one
        task a request fewer, and no asyncio.wait: 45,000 instructions less a request, counted by
        bench/server_instructions.py); None if the client went away before the response was made."""
        answering = asyncio.current_task()
        answered = False

        def gone(_: asyncio.Task) -> None:
            if not answered:  # (run later than the answer's end, it has nothing left to cancel)
                answering.cancel()

        disconnect = asyncio.create_task(self.listen_for_disconnect(receive))
        disconnect.add_done_callback(gone)
        response = None
        try:
            response = await self.run_get_response(request)
            await self.send_response(response, send)
        except asyncio.CancelledError:
            if not disconnect.done() or answering.uncancel():
                raise  # cancelled from outside (the server stopping), not by the client going away
            # The client went away: before the response was made (None), or while it was sent
            # (the response is still closed as sent).
        finally:
            answered = True
            await _finish(disconnect)  # Django's order: the answer, then the listener
        return response


@functools.lru_cache(maxsize=4)  # per URLconf resolver (a test may swap the URLconf)
def fixed_routes(resolver: URLResolver) -> dict[str, dict]:
    """Each /v1/ path of the URLconf without a parameter, with what Django resolves it to. Taken
    once a process, before it serves (llmhub/warm.py)."""
    paths = [f"/{p.pattern}" for p in resolver.url_patterns if isinstance(p, URLPattern)]
    fixed = [path for path in paths if path.startswith(PREFIX) and "<" not in path]
    return {path: _fields(resolver.resolve(path)) for path in fixed}


def _fields(match: ResolverMatch) -> dict:
    """A ResolverMatch's arguments, to make a new one alike for each request (it cannot be copied)."""
    return {name: getattr(match, name) for name in MATCH_FIELDS}


def _run_closers(response: HttpResponseBase) -> None:
    """response.close() without request_finished: the request's uploaded files closed (and a
    response's file or iterator, none on the API), here on the loop as Django's handler closes the
    request's body."""
    for closer in response._resource_closers:
        try:
            closer()
        except Exception:  # noqa: BLE001 - the answer is sent: as Django, the other closers still run
            logger.exception("Closing the request or its response failed")
    response._resource_closers.clear()
    response.closed = True


async def _finish(task: asyncio.Task) -> None:
    """A task of a request ended: its result (a client that went away is not an error), or
    cancelled, as Django's handler does with them."""
    if task.done():
        with contextlib.suppress(RequestAborted):  # the client went away
            task.result()
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):  # cancelled as asked
        await task


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

    def process_request(self, request: HttpRequest) -> HttpResponseBase | None:
        """Django's, with its settings read through llmhub.conf (a read of django.conf.settings
        costs ~3,000 instructions); the PREPEND_WWW redirect, when due, is Django's own."""
        user_agent = request.META.get("HTTP_USER_AGENT")
        if user_agent is not None:
            for pattern in conf.setting("DISALLOWED_USER_AGENTS"):
                if pattern.search(user_agent):
                    raise PermissionDenied("Forbidden user agent")
        host = request.get_host()
        if conf.setting("PREPEND_WWW") and host and not host.startswith("www."):
            return super().process_request(request)
        return None
