"""The OpenAI-compatible API's answers: POST /v1/chat/completions, whole or streamed, the HTTP error of
a run that failed, the rate-limit headers on every /v1/ answer, and the 404 of any other /v1/ path.

A request becomes a Run exactly like one started in the browser (usage.runs): the same estimate,
budget reservation, retries, fallback, usage row and audit entries. What happens before the run
starts (key, model, price, rate limits) is gateway.front; this module only translates the run's
events into OpenAI's answer.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway import front
from gateway import openai_format as fmt
from gateway import openai_response as answer
from gateway.front import ApiError
from providers import configuration
from providers.base import Delta, ToolCallDelta
from providers.errors import CircuitOpen, NetworkError, RateLimited, Timeout
from usage import runs
from usage.budgets import BudgetRefused
from usage.events import Cancelled, DatabaseUnavailable, Ended, HubError, Interrupted, Started, TimeLimit
from usage.models import Run


def rate_limit_headers(anthropic: bool = False) -> Callable:
    """A /v1/ view whose every answer, refusals included, carries the rate limits its request is
    subject to (OpenAI's x-ratelimit-* headers, or Anthropic's anthropic-ratelimit-*)."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        async def answered(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            response = await view(request, *args, **kwargs)
            standing = getattr(request, "rate_limits", None)
            for name, value in (standing.headers(anthropic) if standing else {}).items():
                response[name] = value
            return response

        return answered

    return decorate


def failure(ended: Ended) -> ApiError:
    """The HTTP error for a run that ended without a complete, recorded answer."""
    run, error = ended.run, ended.error
    if isinstance(error, DatabaseUnavailable):  # it never started: nothing to record
        return front.database_unavailable()
    if not ended.settled:
        message = "The hub could not record this request's usage (its database refused the write); retry in a moment."
        return ApiError(
            503, message, type_="api_error", code="usage_not_recorded", headers=answer.retry_after_header(5)
        )
    if isinstance(error, BudgetRefused):
        return ApiError(402, str(error), type_="insufficient_quota", code="budget_exceeded")
    if isinstance(error, CircuitOpen):
        headers = answer.retry_after_header(error.retry_after)
        return ApiError(
            503, run.error_message, type_="api_error", code="upstream_unavailable", headers=headers
        )
    if isinstance(error, RateLimited):
        return ApiError(
            429,
            run.error_message,
            type_="rate_limit_error",
            code="rate_limit_exceeded",
            headers=answer.retry_after_header(error.retry_after),
        )
    if isinstance(error, Interrupted):
        restarting = answer.retry_after_header(2)
        return ApiError(
            503, run.error_message, type_="api_error", code="server_restarting", headers=restarting
        )
    if isinstance(error, NetworkError | Timeout | TimeLimit):
        return ApiError(503, run.error_message, type_="api_error", code="upstream_unavailable")
    if isinstance(error, Cancelled):
        return ApiError(409, run.error_message, type_="api_error", code="run_cancelled")
    if isinstance(error, HubError):
        return ApiError(500, run.error_message, type_="server_error", code="internal_error")
    return ApiError(
        502, run.error_message or "The provider failed.", type_="api_error", code="upstream_error"
    )


@csrf_exempt
@configuration.pinned
@rate_limit_headers()
async def chat_completions(request: HttpRequest) -> HttpResponse:
    try:
        prepared = await front.begin(request, fmt.parse)
    except ApiError as error:
        return error.response()
    events = runs.stream(prepared.run, planned=prepared.planned)
    if not prepared.request.stream:
        async with aclosing(events):
            ended = [event async for event in events if isinstance(event, Ended)][-1]
        if not ended.completed:
            return failure(ended).response()
        run = ended.run
        legacy = prepared.request.legacy_functions
        return answer.json_response(answer.completion(run, run.model_used or run.model_requested, legacy))
    # Streaming: the status line waits for the first text (or the failure that replaces it).
    async for event in events:
        if isinstance(event, Delta | ToolCallDelta):
            return sse(_relay(prepared.run, prepared.request, event, events))
        if isinstance(event, Ended):
            if event.completed:  # finished with no text at all
                return sse(_relay(prepared.run, prepared.request, None, events, event))
            return failure(event).response()
    raise RuntimeError("the run engine ended without an Ended event")


def sse(stream: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy in front must not buffer the stream either
    return response


async def _relay(
    run: Run,
    chat: fmt.ChatRequest,
    first: Delta | ToolCallDelta | None,
    events,
    ended: Ended | None = None,
) -> AsyncIterator[bytes]:
    """Each delta is written as it arrives; the usage row is committed before the last chunk, and
    a run that fails (or cannot be recorded) ends the stream with an error event, never silently."""
    async with aclosing(events):
        model = run.model_used or run.model_requested
        writer = answer.ChunkWriter(run, model, chat.include_usage, chat.legacy_functions)
        # The role chunk and the first delta are both at hand: one write, not two.
        yield writer.role() if first is None else writer.role() + writer.event(first)
        async for event in events:
            if isinstance(event, Delta | ToolCallDelta):
                yield writer.event(event)
            elif isinstance(event, Ended):
                ended = event
            elif not isinstance(event, Started):
                yield writer.comment(getattr(event, "message", "waiting"))
    if ended.completed:
        yield writer.finish(ended.run)
    else:
        refused = failure(ended)
        yield answer.error_event(str(refused), refused.type, refused.code)


# What this hub serves under /v1/, named by the 404 of any other path.
SERVED = (
    "GET /v1/models",
    "POST /v1/chat/completions",
    "POST /v1/completions",
    "POST /v1/embeddings",
    "POST /v1/messages",
    "POST /v1/messages/count_tokens",
    "POST /v1/responses",
    "GET and DELETE /v1/responses/{id}",
    "GET /v1/responses/{id}/input_items",
)


@csrf_exempt
async def not_found(request: HttpRequest, path: str) -> HttpResponse:
    message = f"Unknown API path /v1/{path}. This hub serves {', '.join(SERVED)}."
    return ApiError(404, message, code="unknown_url").response()
