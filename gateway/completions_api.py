"""OpenAI's legacy Completions API, POST /v1/completions, mapped onto chat: the prompt becomes one
user message and the request runs as a chat completion on any provider (gateway.front.begin and the
run engine: key, allowed models, estimate, reservation, retries, fallback, cap, usage row). The
fields both APIs share are read by the chat format itself, so they are checked exactly as there.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway import api, front, json_body
from gateway import openai_format as fmt
from gateway import openai_response as chat_answer
from gateway.front import ApiError
from gateway.openai_messages import BadRequest
from providers import configuration
from providers.base import Delta, ToolCallDelta
from usage import runs
from usage.events import Ended, Started
from usage.models import Run

# Read by the chat format as they are.
SHARED = {
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "seed",
    "user",
}
# The legacy API's own fields, refused unless neutral: chat has nothing they could become.
REFUSED = {
    "suffix": (None, "suffix (insertion needs a completion model; chat models have none)"),
    "best_of": (1, "best_of above 1"),
    "logprobs": (0, "logprobs (legacy completions' token logprobs)"),
}
DEFAULT_MAX_TOKENS = 16  # the legacy API's own default


def _legacy(body: bytes) -> dict[str, Any]:
    try:
        data = json_body.load(body)
    except json_body.BadBody as error:
        raise BadRequest(str(error), param=error.param, code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    return data


def _prompt(raw: Any) -> str:
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str):
        raw = raw[0]
    if isinstance(raw, str) and raw:
        return raw
    if isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        raise BadRequest(
            "prompt: this hub takes one prompt per request; send several prompts as several requests.",
            param="prompt",
        )
    if isinstance(raw, list) and raw and all(isinstance(item, int | list) for item in raw):
        raise BadRequest(
            "prompt: token arrays are not supported (tokens differ between providers); send text.",
            param="prompt",
        )
    raise BadRequest("prompt: must be a non-empty string.", param="prompt")


def parse(body: bytes) -> fmt.ChatRequest:
    """A legacy request as the chat request it runs as."""
    data = _legacy(body)
    for name in data:
        if name not in SHARED and name not in REFUSED and name not in ("prompt", "echo"):
            raise BadRequest(f"Unrecognized request argument supplied: {name}", param=name)
    refused = [name for name, (neutral, _) in REFUSED.items() if data.get(name) not in (neutral, None)]
    if refused:
        reasons = ", ".join(REFUSED[name][1] for name in refused)
        raise BadRequest(
            f"This hub does not support {reasons}.", param=refused[0], code="unsupported_parameter"
        )
    if not isinstance(data.get("echo", False), bool):
        raise BadRequest("echo must be true or false.", param="echo")
    chat = {name: value for name, value in data.items() if name in SHARED}
    chat["messages"] = [{"role": "user", "content": _prompt(data.get("prompt"))}]
    chat.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
    return fmt.parse(chat_answer.json_bytes(chat))


def completion_id(run: Run) -> str:
    return f"cmpl-{run.uuid.hex}"


def _finish(reason: str) -> str:
    return "length" if reason == "length" else "stop"


def completion(run: Run, echo: str) -> dict[str, Any]:
    choices = [
        {
            "text": echo + (choice["content"] or ""),
            "index": choice["index"],
            "logprobs": None,
            "finish_reason": _finish(choice.get("finish_reason") or ""),
        }
        for choice in chat_answer.choices(run)
    ]
    return {
        "id": completion_id(run),
        "object": "text_completion",
        "created": int(run.created_at.timestamp()),
        "model": run.model_used or run.model_requested,
        "choices": choices,
        "usage": chat_answer.usage(chat_answer.run_usage(run)),
    }


def _echo(request: HttpRequest, chat: fmt.ChatRequest) -> str:
    return chat.request.messages[0].text if _legacy(request.body).get("echo") else ""


@csrf_exempt
@configuration.pinned
@api.rate_limit_headers()
async def completions(request: HttpRequest) -> HttpResponse:
    try:
        prepared = await front.begin(request, parse)
    except ApiError as error:
        return error.response()
    echo = _echo(request, prepared.request)
    events = runs.stream(prepared.run, planned=prepared.planned)
    if not prepared.request.stream:
        async with aclosing(events):
            ended = [event async for event in events if isinstance(event, Ended)][-1]
        if not ended.completed:
            return api.failure(ended).response()
        return chat_answer.json_response(completion(ended.run, echo))
    async for event in events:
        if isinstance(event, Delta | ToolCallDelta):
            return api.sse(_relay(prepared, echo, event, events))
        if isinstance(event, Ended):
            if event.completed:
                return api.sse(_relay(prepared, echo, None, events, event))
            return api.failure(event).response()
    raise RuntimeError("the run engine ended without an Ended event")


async def _relay(prepared, echo: str, first, events, ended: Ended | None = None) -> AsyncIterator[bytes]:
    run = prepared.run
    head = {"id": completion_id(run), "object": "text_completion", "created": int(time.time())}
    head["model"] = run.model_used or run.model_requested

    def chunk(choices: list, **extra: Any) -> bytes:
        return b"data: " + chat_answer.json_bytes({**head, "choices": choices, **extra}) + b"\n\n"

    def text(index: int, piece: str, reason: str | None = None) -> bytes:
        return chunk([{"text": piece, "index": index, "logprobs": None, "finish_reason": reason}])

    async with aclosing(events):
        if echo:
            yield b"".join(text(n, echo) for n in range(prepared.request.request.n))
        if isinstance(first, Delta):
            yield text(first.choice, first.text)
        async for event in events:
            if isinstance(event, Delta):
                yield text(event.choice, event.text)
            elif isinstance(event, Ended):
                ended = event
            elif not isinstance(event, Started | ToolCallDelta):
                yield chat_answer.ChunkWriter.comment(getattr(event, "message", "waiting"))
    if not ended.completed:
        refused = api.failure(ended)
        yield chat_answer.error_event(str(refused), refused.type, refused.code)
        return
    for choice in chat_answer.choices(ended.run):
        yield text(choice["index"], "", _finish(choice.get("finish_reason") or ""))
    if prepared.request.include_usage:
        yield chunk([], usage=chat_answer.usage(chat_answer.run_usage(ended.run)))
    yield b"data: [DONE]\n\n"
