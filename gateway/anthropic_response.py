"""Answers in Anthropic's Messages format, as the official SDKs read them: a message with text and
tool_use blocks, the event stream (message_start, ping, content_block_start / delta / stop with
text_delta and input_json_delta, message_delta with the usage, message_stop), and errors."""

from __future__ import annotations

import json
from typing import Any

from gateway.openai_response import json_bytes, run_usage
from providers.base import Delta, TokenCount, ToolCallDelta

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
# Anthropic's error types by HTTP status (its "Errors" page); anything else 5xx is an api_error.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def message_id(run_uuid) -> str:
    return f"msg_{run_uuid.hex}"


def stopped(run, finish_reason: str) -> dict[str, str | None]:
    """stop_reason and stop_sequence. Only a provider that says which stop sequence stopped it
    (Anthropic) gets "stop_sequence"; the others report an ordinary stop, read as end_turn."""
    sequence = (run.answer or {}).get("stop_sequence")
    if str(finish_reason) == "stop" and sequence:
        return {"stop_reason": "stop_sequence", "stop_sequence": sequence}
    return {"stop_reason": STOP_REASONS.get(str(finish_reason), "end_turn"), "stop_sequence": None}


def usage(tokens: TokenCount) -> dict[str, int]:
    """Anthropic counts cached prompt tokens apart from input_tokens; the hub counts them within."""
    return {
        "input_tokens": max(0, tokens.input - tokens.cache_read - tokens.cache_write),
        "cache_creation_input_tokens": tokens.cache_write,
        "cache_read_input_tokens": tokens.cache_read,
        "output_tokens": tokens.output,
    }


def _input(arguments: str) -> Any:
    """A tool call's arguments as the object Anthropic's tool_use.input is. A model that wrote no
    valid JSON object gets its text kept under one key rather than dropped."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {"_unparsed_arguments": arguments}
    return value if isinstance(value, dict) else {"_unparsed_arguments": arguments}


def message(run, model: str) -> dict[str, Any]:
    answer = run.answer or {}
    content: list[dict[str, Any]] = [{"type": "text", "text": run.output}] if run.output else []
    for call in answer.get("tool_calls", []):
        content.append(
            {"type": "tool_use", "id": call["id"], "name": call["name"], "input": _input(call["arguments"])}
        )
    return {
        "id": message_id(run.uuid),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        **stopped(run, run.finish_reason or ""),
        "usage": usage(run_usage(run)),
    }


def event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + json_bytes({"type": kind, **data}) + b"\n\n"


def error_body(status: int, message_text: str) -> dict[str, Any]:
    kind = ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message_text}}


def error_event(status: int, message_text: str) -> bytes:
    body = error_body(status, message_text)
    return event("error", {"error": body["error"]})


class StreamWriter:
    """The events of one streamed message. Text and each tool call are content blocks, opened as
    they begin and closed before the next one opens, as Anthropic streams them."""

    def __init__(self, run, model: str) -> None:
        self.run, self.model = run, model
        self.blocks = 0  # content blocks opened so far
        self.open: int | None = None  # the block that is open
        self.text_block: int | None = None  # the open text block, if the open one is text
        self.calls: dict[int, int] = {}  # tool call index -> its content block

    def start(self) -> bytes:
        opening = {
            "id": message_id(self.run.uuid),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage(TokenCount(self.run.estimated_input_tokens or 0, 1)),
        }
        return event("message_start", {"message": opening}) + event("ping", {})

    def _close(self) -> bytes:
        if self.open is None:
            return b""
        closed, self.open, self.text_block = self.open, None, None
        return event("content_block_stop", {"index": closed})

    def _begin(self, block: dict[str, Any]) -> tuple[bytes, int]:
        out = self._close()
        index, self.blocks = self.blocks, self.blocks + 1
        self.open = index
        return out + event("content_block_start", {"index": index, "content_block": block}), index

    def delta(self, piece: Delta | ToolCallDelta) -> bytes:
        if isinstance(piece, ToolCallDelta):
            return self._tool_call(piece)
        out = b""
        if self.text_block is None:
            out, self.text_block = self._begin({"type": "text", "text": ""})
        return out + event(
            "content_block_delta",
            {"index": self.text_block, "delta": {"type": "text_delta", "text": piece.text}},
        )

    def _tool_call(self, piece: ToolCallDelta) -> bytes:
        out = b""
        if piece.index not in self.calls:
            block = {"type": "tool_use", "id": piece.id, "name": piece.name, "input": {}}
            out, self.calls[piece.index] = self._begin(block)
        if not piece.arguments:
            return out
        partial = {"type": "input_json_delta", "partial_json": piece.arguments}
        return out + event("content_block_delta", {"index": self.calls[piece.index], "delta": partial})

    def finish(self, run, finish_reason: str) -> bytes:
        totals = usage(run_usage(run))
        delta = stopped(run, finish_reason or run.finish_reason or "")
        return (
            self._close()
            + event("message_delta", {"delta": delta, "usage": totals})
            + event("message_stop", {})
        )

    def fail(self, status: int, message_text: str) -> bytes:
        return self._close() + error_event(status, message_text)
