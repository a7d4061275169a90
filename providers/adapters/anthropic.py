"""Anthropic's Messages API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

from providers.base import (
    CredentialField,
    Delta,
    Finished,
    FinishReason,
    GenerationRequest,
    GenerationResponse,
    ProviderAdapter,
    ProviderConfig,
    StreamEvent,
    TokenCount,
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
from providers.http import parse_retry_after

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
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
    kind_name = "Anthropic"
    default_endpoint = "https://api.anthropic.com/v1"
    credential_fields = (CredentialField("api_key", "API key", placeholder="sk-ant-..."),)

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        return {"x-api-key": config.credential("api_key"), "anthropic-version": API_VERSION}

    async def validate_credentials(self, config: ProviderConfig) -> None:
        await self.http_for(config).get_json("/models", deadline=config.validation_timeout)

    async def fetch_model_ids(self) -> list[str]:
        listing = await self.http.get_json("/models?limit=1000")
        return sorted(model["id"] for model in listing.get("data", []))

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        message, name = await self.http.post_json("/messages", self.payload(request)), self.display_name
        return GenerationResponse(
            content="".join(b.get("text", "") for b in message.get("content", []) if b.get("type") == "text"),
            usage=TokenCount(
                _input_tokens(name, message.get("usage")),
                reported_tokens(name, "output_tokens", message["usage"]["output_tokens"]),
            ),
            model=message.get("model", request.model),
            finish_reason=STOP_REASONS.get(message.get("stop_reason"), FinishReason.OTHER),
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        input_tokens = output_tokens = 0
        finish, model = FinishReason.OTHER, request.model
        async for event in self.http.post_sse("/messages", {**self.payload(request), "stream": True}):
            data = self.http.parse_json(event.data)
            kind = data.get("type", event.event)
            if kind == "message_start":
                message = data.get("message", {})
                model = message.get("model", model)
                input_tokens = _input_tokens(self.display_name, message.get("usage"))
                output_tokens = reported_tokens(
                    self.display_name, "output_tokens", (message.get("usage") or {}).get("output_tokens")
                )
            elif kind == "content_block_delta" and data["delta"].get("type") == "text_delta":
                yield Delta(data["delta"]["text"])
            elif kind == "message_delta":
                finish = STOP_REASONS.get(data.get("delta", {}).get("stop_reason"), FinishReason.OTHER)
                # output_tokens here is the running total, not an increment.
                reported = (data.get("usage") or {}).get("output_tokens")
                if reported is not None:
                    output_tokens = reported_tokens(self.display_name, "output_tokens", reported)
            elif kind == "message_stop":
                yield Finished(TokenCount(input_tokens, output_tokens), finish, model)
                return
            elif kind == "error":
                error_type = (data.get("error") or {}).get("type", "api_error")
                self._raise_error(ERROR_STATUS.get(error_type, 500), {}, data, event.data)
        raise StreamInterrupted(self.display_name)  # no message_stop: never a clean finish

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        known = {m.id: m for m in self.config.models}
        max_tokens = request.max_tokens or (
            known[request.model].max_output if request.model in known else None
        )
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": max_tokens or DEFAULT_MAX_TOKENS,
            "messages": [{"role": m.role, "content": m.content} for m in request.conversation],
        }
        if request.system_prompt:
            body["system"] = request.system_prompt
        if request.temperature is not None:
            body["temperature"] = request.temperature
        return body

    def raise_for_status(self, status: int, headers: Mapping[str, str], body: str) -> None:
        try:
            parsed = self.http.parse_json(body, status)
        except UnexpectedResponse:
            parsed = {}
        self._raise_error(status, headers, parsed if isinstance(parsed, dict) else {}, body)

    def _raise_error(self, status: int, headers: Mapping[str, str], parsed: dict, body: str) -> None:
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


def _input_tokens(provider: str, usage: Mapping[str, Any] | None) -> int:
    """Cached prompt tokens are input tokens too: all of them count toward the prompt."""
    usage = usage or {}
    fields = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    return sum(reported_tokens(provider, field, usage.get(field)) for field in fields)


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
