"""Anthropic's Messages API: POST /v1/messages and POST /v1/messages/count_tokens, on any provider.

A request is read into the hub's own request (gateway.anthropic_request) and becomes a Run through
the same steps as a chat completion (gateway.front.begin: key, allowed models, estimate, reservation),
then runs on the engine (retries, fallback, output cap, usage row). This module only translates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from channels.db import database_sync_to_async
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway import anthropic_request, api, front
from gateway import anthropic_response as answer
from gateway.front import ApiError
from gateway.openai_format import BadRequest
from gateway.openai_response import json_response
from providers import configuration
from providers.base import Delta, ToolCallDelta
from usage import runs
from usage.events import Ended, Started
from usage.models import Run


def _error(error: ApiError) -> HttpResponse:
    # The hub's refusals name OpenAI's field; an Anthropic client asked for it as `thinking`.
    text = str(error).replace("reasoning_effort", "thinking")
    return json_response(answer.error_body(error.status, text), status=error.status, headers=error.headers)


@csrf_exempt
@configuration.pinned
@api.rate_limit_headers(anthropic=True)
async def messages(request: HttpRequest) -> HttpResponse:
    try:
        prepared = await front.begin(request, anthropic_request.parse)
    except ApiError as error:
        return _error(error)
    run = prepared.run
    events = runs.stream(run, planned=prepared.planned)
    if not prepared.request.stream:
        async with aclosing(events):
            ended = [event async for event in events if isinstance(event, Ended)][-1]
        if not ended.completed:
            return _error(api.failure(ended))
        return json_response(answer.message(ended.run, _model(ended.run)))
    # As for chat completions, the status line waits for the first output (or the failure instead).
    async for event in events:
        if isinstance(event, Delta | ToolCallDelta):
            return api.sse(_relay(run, event, events))
        if isinstance(event, Ended):
            if event.completed:
                return api.sse(_relay(run, None, events, event))
            return _error(api.failure(event))
    raise RuntimeError("the run engine ended without an Ended event")


def _model(run: Run) -> str:
    return run.model_used or run.model_requested


async def _relay(run: Run, first, events, ended: Ended | None = None) -> AsyncIterator[bytes]:
    async with aclosing(events):
        writer = answer.StreamWriter(run, _model(run))
        yield writer.start()
        if first is not None:
            yield writer.delta(first)
        async for event in events:
            if isinstance(event, Delta | ToolCallDelta):
                yield writer.delta(event)
            elif isinstance(event, Ended):
                ended = event
            elif not isinstance(event, Started):
                yield answer.event("ping", {})  # the hub is retrying or falling back: keep the line open
    if ended.completed:
        yield writer.finish(ended.run, ended.finish_reason)
    else:
        refused = api.failure(ended)
        yield writer.fail(refused.status, str(refused))


def _count(request: HttpRequest, body: bytes) -> dict[str, int]:
    key = front.authenticate(request)
    try:
        chat = anthropic_request.parse_count(body)
    except BadRequest as error:
        raise ApiError(400, str(error), param=error.param) from None
    ref = front.resolve(key, chat.model)
    try:
        entry, dialect = runs.available_model(key.team, ref)
    except runs.RunRefused as refused:
        raise ApiError(404, str(refused), param="model") from None
    options = chat.request.options_json()
    priced = runs.estimate(entry, dialect, chat.request.messages, 1, options=options)
    return {"input_tokens": priced.input_tokens}


@csrf_exempt
@configuration.pinned
async def count_tokens(request: HttpRequest) -> HttpResponse:
    """The prompt's tokens as the hub counts them before a run (the model's own tokenizer where the
    hub has it, else one that errs high). Counting is free: no run, no usage row."""
    if request.method != "POST":
        return _error(ApiError(405, "Use POST for /v1/messages/count_tokens."))
    try:
        return json_response(
            await database_sync_to_async(_count, thread_sensitive=False)(request, request.body)
        )
    except ApiError as error:
        return _error(error)
    except DatabaseError:
        return _error(front.database_unavailable())
