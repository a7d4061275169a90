"""Every request gets an id, is counted, and leaves one log line.

The id is the client's own `x-request-id` when it is sane (1-128 letters, digits and `._:-`), else a
new one; it is on `request.request_id`, in the response's `x-request-id`, on the run a request starts
(and its usage row), and on every log line written while the request is handled.

Sync and async, so the API's async views run without a thread hop; the work per request is a header
check, a counter, a histogram and one log line (a few microseconds). On the API the counting and the
line come once the answer is sent (llmhub/afterwards.py); on the pages, at once.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from llmhub import afterwards
from ops import logs, metrics

SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# A client chooses the method: any other is counted as "other", or each made-up one would be a series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HEADER = "X-Request-ID"

log = logging.getLogger("llmhub.requests")


class RequestMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.is_async:
            return self.__acall__(request)
        started = _begin(request)
        return _end(request, self.get_response(request), started)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        started = _begin(request)
        return _end(request, await self.get_response(request), started)


def _begin(request: HttpRequest) -> float:
    offered = request.META.get("HTTP_X_REQUEST_ID", "")
    request.request_id = offered if SANE_ID.fullmatch(offered) else uuid.uuid4().hex
    # Not reset afterwards: each request is handled in its own context (a task, or the thread's
    # next request sets it again), and a streamed response's lines still carry it.
    logs.request_id.set(request.request_id)
    return time.perf_counter()


def _end(request: HttpRequest, response: HttpResponse, started: float) -> HttpResponse:
    seconds = time.perf_counter() - started
    response[HEADER] = request.request_id
    # Counted and logged once an API answer is sent (llmhub/afterwards.py): the client does not wait
    # for it. The time is the time the answer took to make, as before.
    afterwards.later(_count_and_log, request, response, seconds)
    return response


def _count_and_log(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    endpoint = _endpoint(request)
    method = request.method if request.method in METHODS else "other"
    metrics.child(metrics.REQUESTS, endpoint, method, str(response.status_code)).inc()
    metrics.child(metrics.REQUEST_SECONDS, endpoint).observe(seconds)
    if log.isEnabledFor(logging.INFO):
        log.info(
            "%s %s %s %.1f ms",
            request.method,
            request.path,
            response.status_code,
            seconds * 1000,
            # The request id: a text line written while the request is handled names it itself.
            extra=_fields(request, response, endpoint, seconds)
            if logs.structured()
            else {"request_id": request.request_id},
        )


def _endpoint(request: HttpRequest) -> str:
    """The URL route (`v1/chat/completions`), never the raw path: one label value per route."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.route or match.view_name
    if request.path.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return "static"
    return "unmatched"


def _fields(request: HttpRequest, response: HttpResponse, endpoint: str, seconds: float) -> dict:
    fields = {
        "event": "request",
        "request_id": request.request_id,
        "method": request.method,
        "path": request.path,
        "endpoint": endpoint,
        "status": response.status_code,
        "duration_ms": round(seconds * 1000, 1),
    }
    key = getattr(request, "api_key", None)
    if key is not None:
        fields.update(api_key=key.masked, api_key_id=key.pk, team=key.team.name)
    # Only a user the request already loaded: looking one up here would cost every request a query.
    user = getattr(request, "_cached_user", None)
    if user is not None and user.is_authenticated:
        fields["user_id"] = user.pk
    return fields
