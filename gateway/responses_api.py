"""OpenAI's Responses API, POST /v1/responses, on any provider: the request is read as a chat
completion (gateway.responses_request) and runs on the engine through gateway.front.begin; answers are
Response objects, streamed with the Responses event sequence. With `store: true` a completed answer
is kept for the key's team (gateway.response_store); a run that fails stores nothing."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from channels.db import database_sync_to_async
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway import api, front, response_store, responses_request
from gateway import openai_response as chat_answer
from gateway.front import ApiError
from providers import configuration
from providers.base import Delta, ToolCallDelta
from usage import runs
from usage.events import Ended, Started
from usage.models import Run

logger = logging.getLogger(__name__)


def usage(run: Run) -> dict[str, Any]:
    tokens = chat_answer.run_usage(run)
    return {
        "input_tokens": tokens.input,
        "input_tokens_details": {"cached_tokens": tokens.cache_read},
        "output_tokens": tokens.output,
        "output_tokens_details": {"reasoning_tokens": tokens.reasoning},
        "total_tokens": tokens.input + tokens.output,
    }


def _message_item(run: Run, text: str, status: str = "completed") -> dict[str, Any]:
    content = (
        [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
        if status == "completed"
        else []
    )
    return {
        "type": "message",
        "id": f"msg_{run.uuid.hex}",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _call_item(run: Run, index: int, call: dict[str, str], status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{run.uuid.hex}_{index}",
        "call_id": call["id"],
        "name": call["name"],
        "arguments": call["arguments"],
        "status": status,
    }


def response(
    run: Run,
    status: str = "completed",
    output: list | None = None,
    asked: responses_request.Asked | None = None,
) -> dict[str, Any]:
    """The Response object of a run: in progress (no output yet) or finished."""
    if output is None and status != "in_progress":
        calls = (run.answer or {}).get("tool_calls", [])
        output = [_message_item(run, run.output)] if run.output or not calls else []
        output += [_call_item(run, n, call) for n, call in enumerate(calls)]
    incomplete = status != "in_progress" and getattr(run, "finish_reason", "") == "length"
    options = run.options or {}
    return {
        "id": f"resp_{run.uuid.hex}",
        "object": "response",
        "created_at": int(run.created_at.timestamp()) if run.created_at else int(time.time()),
        "status": "incomplete" if incomplete else status,
        "model": run.model_used or run.model_requested,
        "output": output or [],
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "error": None,
        "parallel_tool_calls": options.get("parallel_tool_calls", True),
        "tool_choice": _tool_choice(options.get("tool_choice")),
        "tools": [{"type": "function", **tool} for tool in options.get("tools", [])],
        "temperature": float(run.temperature) if run.temperature is not None else None,
        "max_output_tokens": run.max_tokens,
        "store": bool(asked and asked.store),
        "previous_response_id": asked.previous.last if asked else None,
        "usage": usage(run) if status != "in_progress" else None,
    }


def _tool_choice(stored: dict | None) -> Any:
    """The tool_choice as asked, from the run's stored options (providers.chat.ToolChoice)."""
    if not stored:
        return "auto"
    if stored["mode"] == "function":
        return {"type": "function", "name": stored["name"]}
    return stored["mode"]


class Reader:
    """Reads the body for front.begin, after the key is known (front.authenticate sets request.api_key
    first): previous_response_id is looked up among that key's team's responses only."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request
        self.asked: responses_request.Asked | None = None

    def parse(self, body: bytes):
        self.asked = responses_request.read(body, self.request.api_key.team)
        return self.asked.chat


@csrf_exempt
@configuration.pinned
@api.rate_limit_headers()
async def responses(request: HttpRequest) -> HttpResponse:
    reader = Reader(request)
    try:
        prepared = await front.begin(request, reader.parse)
    except ApiError as error:
        return error.response()
    asked = reader.asked
    events = runs.stream(prepared.run, planned=prepared.planned)
    if not prepared.request.stream:
        async with aclosing(events):
            ended = [event async for event in events if isinstance(event, Ended)][-1]
        if not ended.completed:
            return api.failure(ended).response()
        return chat_answer.json_response(await keep(response(ended.run, asked=asked), asked, request.api_key))
    async for event in events:
        if isinstance(event, Delta | ToolCallDelta):
            return api.sse(_relay(prepared.run, asked, request.api_key, event, events))
        if isinstance(event, Ended):
            if event.completed:
                return api.sse(_relay(prepared.run, asked, request.api_key, None, events, event))
            return api.failure(event).response()
    raise RuntimeError("the run engine ended without an Ended event")


async def keep(answer: dict[str, Any], asked: responses_request.Asked, key) -> dict[str, Any]:
    """The finished Response object, stored when the request asked. The run is answered and paid
    for already: a database that refuses the write is logged and the answer says `store: false`."""
    if not asked.store:
        return answer
    try:
        await database_sync_to_async(response_store.save, thread_sensitive=False)(
            key, answer, asked.input_items, asked.previous
        )
    except DatabaseError:
        logger.exception("The response %s could not be stored", answer["id"])
        return answer | {"store": False}
    return answer


class StreamWriter:
    """The Responses events of one run: the text as one message item, each tool call as a
    function_call item, every event numbered."""

    def __init__(self, run: Run, asked: responses_request.Asked) -> None:
        self.run, self.asked, self.number = run, asked, 0
        self.items: list[dict[str, Any]] = []  # output items opened, in order
        self.text_item: dict[str, Any] | None = None
        self.calls: dict[int, dict[str, Any]] = {}  # tool call index -> its item

    def event(self, kind: str, **data: Any) -> bytes:
        body = {"type": kind, "sequence_number": self.number, **data}
        self.number += 1
        return b"event: " + kind.encode() + b"\ndata: " + chat_answer.json_bytes(body) + b"\n\n"

    def start(self) -> bytes:
        opening = response(self.run, "in_progress", asked=self.asked)
        return self.event("response.created", response=opening) + self.event(
            "response.in_progress", response=opening
        )

    def delta(self, piece: Delta | ToolCallDelta) -> bytes:
        if isinstance(piece, ToolCallDelta):
            return self._call(piece)
        out = b""
        if self.text_item is None:
            self.text_item = _message_item(self.run, "", "in_progress")
            self.text_item["text"] = ""  # gathered here; written into the item when it is done
            self.items.append(self.text_item)
            index = len(self.items) - 1
            out += self.event("response.output_item.added", output_index=index, item=_public(self.text_item))
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out += self.event("response.content_part.added", **self._where(self.text_item), part=part)
        self.text_item["text"] += piece.text
        return out + self.event(
            "response.output_text.delta", **self._where(self.text_item), delta=piece.text, logprobs=[]
        )

    def _where(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"item_id": item["id"], "output_index": self.items.index(item), "content_index": 0}

    def _call(self, piece: ToolCallDelta) -> bytes:
        out = b""
        if piece.index not in self.calls:
            call = {"id": piece.id, "name": piece.name, "arguments": ""}
            item = _call_item(self.run, piece.index, call, "in_progress")
            self.calls[piece.index] = item
            self.items.append(item)
            out += self.event("response.output_item.added", output_index=len(self.items) - 1, item=dict(item))
        item = self.calls[piece.index]
        if not piece.arguments:
            return out
        item["arguments"] += piece.arguments
        index = self.items.index(item)
        return out + self.event(
            "response.function_call_arguments.delta",
            item_id=item["id"],
            output_index=index,
            delta=piece.arguments,
        )

    def finish(self, run: Run) -> tuple[bytes, dict[str, Any]]:
        """The closing events of every item, and the final Response object (sent by `completed`)."""
        out, done = b"", []
        for index, item in enumerate(self.items):
            if item is self.text_item:
                text = item["text"]
                where = self._where(item)
                out += self.event("response.output_text.done", **where, text=text, logprobs=[])
                part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                out += self.event("response.content_part.done", **where, part=part)
                finished = _message_item(run, text)
            else:
                finished = {**item, "status": "completed"}
                out += self.event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    name=item["name"],
                    arguments=item["arguments"],
                )
            out += self.event("response.output_item.done", output_index=index, item=finished)
            done.append(finished)
        return out, response(run, "completed", done, self.asked)

    def completed(self, final: dict[str, Any]) -> bytes:
        kind = "response.incomplete" if final["status"] == "incomplete" else "response.completed"
        return self.event(kind, response=final)

    def fail(self, error: ApiError) -> bytes:
        failed = response(self.run, "in_progress", asked=self.asked)
        failed |= {"status": "failed", "error": {"code": error.code or "server_error", "message": str(error)}}
        return self.event("response.failed", response=failed)


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key != "text"}


async def _relay(run: Run, asked, key, first, events, ended: Ended | None = None) -> AsyncIterator[bytes]:
    writer = StreamWriter(run, asked)
    async with aclosing(events):
        yield writer.start()
        if first is not None:
            yield writer.delta(first)
        async for event in events:
            if isinstance(event, Delta | ToolCallDelta):
                yield writer.delta(event)
            elif isinstance(event, Ended):
                ended = event
            elif not isinstance(event, Started):
                yield chat_answer.ChunkWriter.comment(getattr(event, "message", "waiting"))
    if ended.completed:
        closing, final = writer.finish(ended.run)
        yield closing
        # Stored before the last event: a client that chains at once finds it.
        yield writer.completed(await keep(final, asked, key))
    else:
        yield writer.fail(api.failure(ended))
