"""Answers in OpenAI's Chat Completions format, exactly as the official SDKs read them: a
completion, the chunks of a stream (text, tool-call pieces, logprobs, one choice or several), usage
with its cached and reasoning details, and errors."""

from __future__ import annotations

import json
import math
import time
from json.encoder import encode_basestring_ascii
from typing import Any

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.http.response import ResponseHeaders

from providers.base import Delta, TokenCount, ToolCallDelta

# JsonResponse's encoder: what orjson cannot write is written by it, or with its help. Compact as
# orjson writes: a stream's chunks are put together from pieces of its output (ChunkWriter).
_ENCODER = DjangoJSONEncoder(separators=(",", ":"))


def json_response(body: dict[str, Any], status: int = 200, headers: dict | None = None) -> HttpResponse:
    """JsonResponse(body, status=..., headers=...) with the same values, written by orjson: compact
    and in UTF-8 rather than with spaces and \\u escapes (the same JSON to any client's parser)."""
    return _JsonAnswer(json_bytes(body), status, headers)


class _Headers(ResponseHeaders):
    """Django's, with `in` answered by its dict: Mapping's `in` asks `[]`, which makes and catches a
    KeyError for each header an answer lacks (4 an answer: Content-Length, the security middleware's
    nosniff, Referrer-Policy and Cross-Origin-Opener-Policy)."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._store


class _JsonAnswer(HttpResponse):
    """HttpResponse(content, content_type="application/json", status=..., headers=...), the same
    headers in the same order (the content type after the caller's), without its KeyErrors."""

    def __init__(self, content: bytes, status: int, headers: dict | None) -> None:
        # The type among the headers given, not as content_type=: then Django's check for it finds it.
        super().__init__(
            content, status=status, headers={**(headers or {}), "Content-Type": "application/json"}
        )
        fast = _Headers(None)
        fast._store = self.headers._store
        self.headers = fast


def json_bytes(body: Any) -> bytes:
    """`body` as JSON, by orjson (a tenth of the standard encoder's instructions for an answer);
    types orjson does not know (Decimal, lazy text) as Django writes them, datetimes too. What orjson
    refuses (an integer beyond 64 bits, a key that is not a string, a lone surrogate) is written by
    Django's encoder, as before. A float that is not finite (only a provider could send one) is
    null, where Django's encoder wrote NaN, which is not JSON."""
    try:
        return orjson.dumps(body, default=_ENCODER.default, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except orjson.JSONEncodeError:
        return _ENCODER.encode(body).encode()


FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter", "tool_calls": "tool_calls"}


def completion_id(run_uuid) -> str:
    return f"chatcmpl-{run_uuid.hex}"


def finish_reason(reason: str, legacy: bool = False) -> str:
    found = FINISH.get(str(reason), "stop")
    return "function_call" if legacy and found == "tool_calls" else found


def usage(tokens: TokenCount) -> dict[str, Any]:
    return {
        "prompt_tokens": tokens.input,
        "completion_tokens": tokens.output,
        "total_tokens": tokens.input + tokens.output,
        "prompt_tokens_details": {"cached_tokens": tokens.cache_read},
        "completion_tokens_details": {"reasoning_tokens": tokens.reasoning},
    }


def run_usage(run) -> TokenCount:
    """The run's token counts, with the details its usage row keeps."""
    return TokenCount(
        run.input_tokens or 0,
        run.output_tokens or 0,
        run.cache_read_tokens,
        run.cache_write_tokens,
        run.reasoning_tokens,
    )


def _tool_calls(calls: list[dict], legacy: bool) -> dict[str, Any]:
    if not calls:
        return {}
    if legacy:
        return {"function_call": {"name": calls[0]["name"], "arguments": calls[0]["arguments"]}}
    return {
        "tool_calls": [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ]
    }


def choices(run) -> list[dict[str, Any]]:
    """Every choice of a finished run: choice 0 from its output, the others from its answer."""
    answer = run.answer or {}
    first = {
        "index": 0,
        "content": run.output,
        "tool_calls": answer.get("tool_calls", []),
        "finish_reason": run.finish_reason,
        "logprobs": answer.get("logprobs"),
    }
    return [first, *answer.get("choices", [])]


def completion(run, model: str, legacy: bool = False) -> dict[str, Any]:
    listed = []
    for choice in choices(run):
        calls = choice.get("tool_calls") or []
        message = {
            "role": "assistant",
            "content": choice["content"] or (None if calls else ""),
            "refusal": None,
            **_tool_calls(calls, legacy),
        }
        logprobs = {"content": choice["logprobs"], "refusal": None} if choice.get("logprobs") else None
        reason = finish_reason(choice.get("finish_reason") or "", legacy)
        listed.append(
            {"index": choice["index"], "message": message, "logprobs": logprobs, "finish_reason": reason}
        )
    return {
        "id": completion_id(run.uuid),
        "object": "chat.completion",
        "created": int(run.created_at.timestamp()) if run.created_at else int(time.time()),
        "model": model,
        "choices": listed,
        "usage": usage(run_usage(run)),
    }


class ChunkWriter:
    """SSE chunks of one completion. The envelope is encoded once; a plain text delta of the first
    choice costs one encode_basestring_ascii of its text, any other chunk one json_bytes."""

    def __init__(self, run, model: str, include_usage: bool, legacy: bool = False) -> None:
        self.include_usage, self.legacy = include_usage, legacy
        self.seen = {0}  # choices that have begun
        envelope = {
            "id": completion_id(run.uuid),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        if include_usage:
            envelope["usage"] = None
        head = json_bytes(envelope)[:-1]
        self._prefix = b"data: " + head + b',"choices":[{"index":0,"delta":{"content":'
        self._suffix = b'},"logprobs":null,"finish_reason":null}]}\n\n'
        self._head = head

    def _event(self, body: bytes) -> bytes:
        return b"data: " + body + b"\n\n"

    def _choice(self, index: int, delta: dict, logprobs: Any = None, finish: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return self._event(self._head + b',"choices":[' + json_bytes(choice) + b"]}")

    def role(self, index: int = 0) -> bytes:
        self.seen.add(index)
        return self._choice(index, {"role": "assistant", "content": ""})

    def event(self, event: Delta | ToolCallDelta) -> bytes:
        opening = b"" if event.choice in self.seen else self.role(event.choice)
        if isinstance(event, ToolCallDelta):
            return opening + self.tool_call(event)
        if event.choice == 0 and not event.logprobs:
            # json.dumps(text) is this function, called through two more (dumps, JSONEncoder.encode).
            return self._prefix + encode_basestring_ascii(event.text).encode() + self._suffix
        logprobs = {"content": list(event.logprobs), "refusal": None} if event.logprobs else None
        return opening + self._choice(event.choice, {"content": event.text}, logprobs)

    def tool_call(self, piece: ToolCallDelta) -> bytes:
        if self.legacy:
            function = {"arguments": piece.arguments, **({"name": piece.name} if piece.name else {})}
            return self._choice(piece.choice, {"function_call": function})
        call: dict[str, Any] = {"index": piece.index}
        if piece.id or piece.name:
            call |= {
                "id": piece.id,
                "type": "function",
                "function": {"name": piece.name, "arguments": piece.arguments},
            }
        else:
            call["function"] = {"arguments": piece.arguments}
        return self._choice(piece.choice, {"tool_calls": [call]})

    def finish(self, run) -> bytes:
        out = b""
        for choice in choices(run):
            if choice["index"] in self.seen:
                out += self._choice(
                    choice["index"], {}, None, finish_reason(choice["finish_reason"] or "", self.legacy)
                )
        if self.include_usage:
            head = self._head.replace(b',"usage":null', b"")
            out += self._event(head + b',"choices":[],"usage":' + json_bytes(usage(run_usage(run))) + b"}")
        return out + b"data: [DONE]\n\n"

    @staticmethod
    def comment(text: str) -> bytes:
        """An SSE comment: clients ignore it; it keeps the connection alive while the hub retries."""
        return b": " + text.encode() + b"\n\n"


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_event(message: str, type_: str, code: str | None = None) -> bytes:
    return b"data: " + json.dumps(error_body(message, type_, code)).encode() + b"\n\n"


def retry_after_header(seconds: float | None) -> dict[str, str]:
    return {"retry-after": str(max(1, math.ceil(seconds)))} if seconds else {}
