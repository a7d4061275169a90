"""Anthropic's Messages API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

from providers.adapters import anthropic_format
from providers.base import (
    CredentialField,
    Delta,
    Finished,
    FinishReason,
    GenerationRequest,
    ModelInfo,
    ProviderAdapter,
    ProviderConfig,
    StreamEvent,
    TokenCount,
    ToolCallDelta,
    reported_tokens,
)
from providers.errors import (
    InvalidCredentials,
    ModelNotAvailable,
    QuotaExceeded,
    RateLimited,
    StreamInterrupted,
    UnexpectedResponse,
)
from providers.http import SSEEvent, parse_retry_after

API_VERSION = "2023-06-01"
STOP_REASONS = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "tool_use": FinishReason.TOOL_CALLS,
    "refusal": FinishReason.CONTENT_FILTER,
}
# Error types of Anthropic's body, for errors sent inside a stream (which has no status of its own).
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
RESET_HEADERS = (
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-reset",
)


class AnthropicAdapter(ProviderAdapter):
    """Messages API: `x-api-key` and `anthropic-version` headers, the system prompt as its own field,
    `max_tokens` always sent, and an SSE stream from message_start to message_stop."""

    dialect = "anthropic"
    accepts = frozenset(
        {
            "top_p",
            "stop",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "response_format",
            "reasoning_effort",
        }
    )
    # Anthropic's tool-use system prompt: 346 tokens on its current models (rounded up).
    tool_prompt_tokens = 400
    kind_name = "Anthropic"
    default_endpoint = "https://api.anthropic.com/v1"
    credential_fields = (CredentialField("api_key", "API key", placeholder="sk-ant-..."),)

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        return {"x-api-key": config.credential("api_key"), "anthropic-version": API_VERSION}

    async def fetch_model_ids(self) -> list[str]:
        listing = await self.http.get_json("/models?limit=1000")
        return sorted(model["id"] for model in listing.get("data", []))

    @classmethod
    def dialect_refusals(cls, request: GenerationRequest, info: ModelInfo) -> list[str]:
        return anthropic_format.refusals(request, info)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        self.check(request)
        usage, finish, model, stopped_by = TokenCount(0, 0), FinishReason.OTHER, request.model, ""
        blocks: dict[int, int | None] = {}  # content block -> tool call index (None: the JSON answer)
        body = {**self.payload(request), "stream": True}
        # Closed here when it returns, not left to the garbage collector (see openai.py's _stream_from).
        async with aclosing(self.http.post_sse("/messages", body, last=_stop)) as events:
            async for event in events:
                data = self.http.parse_json(event.data)
                kind = data.get("type", event.event)
                if kind == "message_start":
                    message = data.get("message", {})
                    model, usage = (
                        message.get("model", model),
                        _usage(self.display_name, message.get("usage"), usage),
                    )
                elif (
                    kind == "content_block_start"
                    and (data.get("content_block") or {}).get("type") == "tool_use"
                ):
                    block = data["content_block"]
                    if block.get("name") == anthropic_format.ANSWER_TOOL:
                        blocks[data["index"]] = None
                    else:
                        blocks[data["index"]] = len([b for b in blocks.values() if b is not None])
                        yield ToolCallDelta(blocks[data["index"]], block.get("id", ""), block.get("name", ""))
                elif kind == "content_block_delta":
                    piece = _piece(data, blocks)
                    if piece is not None:
                        yield piece
                elif kind == "message_delta":
                    reason = (data.get("delta") or {}).get("stop_reason")
                    sequence = (data.get("delta") or {}).get("stop_sequence")
                    # Named only when it is one the request gave: an upstream's other text is not passed on.
                    stopped_by = sequence if reason == "stop_sequence" and sequence in request.stop else ""
                    answered = None in blocks.values() and not any(b is not None for b in blocks.values())
                    finish = FinishReason.STOP if answered else STOP_REASONS.get(reason, FinishReason.OTHER)
                    # output_tokens here is the running total, not an increment.
                    usage = _usage(self.display_name, data.get("usage"), usage)
                elif kind == "message_stop":
                    yield Finished(usage, finish, model, stop_sequence=stopped_by)
                    return
                elif kind == "error":
                    error_type = (data.get("error") or {}).get("type", "api_error")
                    self.raise_error(ERROR_STATUS.get(error_type, 500), {}, data, event.data)
        raise StreamInterrupted(self.display_name)  # no message_stop: never a clean finish

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        known = {m.id: m for m in self.config.models}
        return anthropic_format.payload(request, known.get(request.model))

    def raise_error(self, status: int, headers: Mapping[str, str], parsed: dict, body: str = "") -> None:
        error = parsed.get("error") if isinstance(parsed.get("error"), dict) else {}
        error_type, message = error.get("type", ""), str(error.get("message") or "")
        name = self.display_name
        if status in (401, 403) or error_type in ("authentication_error", "permission_error"):
            raise InvalidCredentials(name, detail=message)
        if status == 429 or error_type == "rate_limit_error":
            raise RateLimited(name, retry_after=_retry_after(headers), detail=message)
        if status == 404 or error_type == "not_found_error":
            found = re.search(r"model:\s*(\S+)", message)
            raise ModelNotAvailable(name, found.group(1) if found else "The model", detail=message)
        if status == 402 or "credit balance is too low" in message:
            raise QuotaExceeded(name, limit_type="credit", detail=message)
        raise UnexpectedResponse(name, status, body, detail=message)


def _piece(data: Mapping[str, Any], blocks: Mapping[int, int | None]) -> StreamEvent | None:
    """A content_block_delta as an event: answer text, a piece of a tool call, or None (thinking)."""
    delta = data.get("delta") or {}
    if delta.get("type") == "text_delta":
        return Delta(delta.get("text", ""))
    if delta.get("type") == "input_json_delta" and data.get("index") in blocks:
        call = blocks[data["index"]]
        fragment = delta.get("partial_json", "")
        return Delta(fragment) if call is None else ToolCallDelta(call, arguments=fragment)
    return None


def _usage(provider: str, usage: Mapping[str, Any] | None, before: TokenCount) -> TokenCount:
    """Anthropic's counts: message_start has the prompt's, message_delta the output's running total.
    Cached prompt tokens are input tokens too, priced at the cache's own rates."""
    usage = usage or {}

    def count(name: str) -> int:
        return reported_tokens(provider, name, usage.get(name))

    read = count("cache_read_input_tokens") or before.cache_read
    written = count("cache_creation_input_tokens") or before.cache_write
    plain = count("input_tokens") if usage.get("input_tokens") is not None else None
    total = plain + read + written if plain is not None else before.input
    output = count("output_tokens") or before.output
    return TokenCount(total, output, cache_read=read, cache_write=written)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    seconds = parse_retry_after(headers.get("retry-after", ""))
    if seconds is not None:
        return seconds
    resets = [_until(headers.get(name, "")) for name in RESET_HEADERS]
    known = [reset for reset in resets if reset is not None]
    return min(known) if known else None


def _until(timestamp: str) -> float | None:
    """Seconds from now until an RFC 3339 time ("2026-11-24T23:40:07Z"), not negative."""
    try:
        when = datetime.fromisoformat(timestamp.strip())
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _stop(event: SSEEvent) -> bool:
    """The stream's last event (its end is read before it is handed on, so the connection is reused)."""
    return event.event == "message_stop"
