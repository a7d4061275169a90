"""OpenAI's Chat Completions API, and every server that speaks it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
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

FINISH_REASONS = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
}
# Listed by /models but not chat models.
NOT_CHAT = (
    "embedding",
    "whisper",
    "tts",
    "dall-e",
    "moderation",
    "davinci",
    "babbage",
    "transcribe",
    "image",
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class OpenAIAdapter(ProviderAdapter):
    """Chat Completions: `Authorization: Bearer`, SSE streaming with usage in the last chunk.

    The o-series reasoning models take `max_completion_tokens` and refuse `temperature`; the
    catalogue marks them with `reasoning = true`.
    """

    dialect = "openai"
    kind_name = "OpenAI"
    default_endpoint = "https://api.openai.com/v1"
    credential_fields = (
        CredentialField("api_key", "API key", placeholder="sk-..."),
        CredentialField(
            "organization_id",
            "Organization ID",
            secret=False,
            required=False,
            help_text="Only for keys that belong to several organizations.",
            placeholder="org-...",
            vendor_only=True,
        ),
    )

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        headers = {}
        if key := config.credential("api_key"):
            # Compatible servers may want the key in another header, or without "Bearer".
            value = f"{config.auth_scheme} {key}".strip() if config.auth_scheme else key
            headers[config.auth_header or "authorization"] = value
        if organization := config.credential("organization_id"):
            headers["openai-organization"] = organization
        return headers

    async def validate_credentials(self, config: ProviderConfig) -> None:
        await self.http_for(config).get_json("/models", deadline=config.validation_timeout)

    def is_chat_model(self, model_id: str) -> bool:
        return not any(word in model_id for word in NOT_CHAT)

    async def fetch_model_ids(self) -> list[str]:
        listing = await self.http.get_json("/models")
        return sorted(model["id"] for model in listing.get("data", []))

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        return self._response(await self.http.post_json("/chat/completions", self.payload(request)), request)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        async for event in self._stream_from("/chat/completions", request):
            yield event

    def _response(self, answer: dict, request: GenerationRequest) -> GenerationResponse:
        choice = (answer.get("choices") or [{}])[0]
        return GenerationResponse(
            content=(choice.get("message") or {}).get("content") or "",
            usage=_usage(self.display_name, answer.get("usage")),
            model=answer.get("model", request.model),
            finish_reason=FINISH_REASONS.get(choice.get("finish_reason"), FinishReason.OTHER),
        )

    async def _stream_from(self, path: str, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        body = {**self.payload(request), "stream": True, "stream_options": {"include_usage": True}}
        finish, usage, model = FinishReason.OTHER, TokenCount(0, 0), request.model
        async for event in self.http.post_sse(path, body):
            if event.data.strip() == "[DONE]":
                yield Finished(usage, finish, model)
                return
            chunk = self.http.parse_json(event.data)
            if "error" in chunk:
                self._raise_error(500, {}, chunk)
            model = chunk.get("model") or model
            for choice in chunk.get("choices") or []:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    yield Delta(text)
                if choice.get("finish_reason"):
                    finish = FINISH_REASONS.get(choice["finish_reason"], FinishReason.OTHER)
            if chunk.get("usage"):
                usage = _usage(self.display_name, chunk["usage"])
        # The body ended without "[DONE]": the answer may be incomplete, so it is not a success.
        raise StreamInterrupted(self.display_name)

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        reasoning = any(m.id == request.model and m.reasoning for m in self.config.models)
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if request.max_tokens is not None:
            body["max_completion_tokens" if reasoning else "max_tokens"] = request.max_tokens
        if request.temperature is not None and not reasoning:
            body["temperature"] = request.temperature
        return body

    def raise_for_status(self, status: int, headers: Mapping[str, str], body: str) -> None:
        try:
            parsed = self.http.parse_json(body, status)
        except UnexpectedResponse:
            parsed = {}
        self._raise_error(status, headers, parsed if isinstance(parsed, dict) else {}, body)

    def _raise_error(self, status: int, headers: Mapping[str, str], parsed: dict, body: str = "") -> None:
        error = parsed.get("error") if isinstance(parsed.get("error"), dict) else {}
        code = error.get("code") or error.get("type") or ""
        message = str(error.get("message") or "")
        name = self.display_name
        if code == "insufficient_quota" or status == 402:
            # OpenAI reports an exhausted quota as 429 too: it is not a wait-and-retry case.
            raise QuotaExceeded(name, detail=message)
        if code == "invalid_api_key" or status == 401:
            raise InvalidCredentials(name, detail=message)
        if status == 403 and code != "unsupported_country_region_territory":
            raise InvalidCredentials(name, detail=message)
        if status == 429 or code == "rate_limit_exceeded":
            raise RateLimited(name, retry_after=_retry_after(headers), detail=message)
        if status == 404 or code == "model_not_found":
            found = re.search(r"model [`'\"]?([^`'\"\s]+)", message)
            raise ModelNotAvailable(name, found.group(1) if found else "The model", detail=message)
        raise UnexpectedResponse(name, status, body or str(parsed), detail=message)


def _usage(provider: str, usage: Mapping[str, Any] | None) -> TokenCount:
    usage = usage or {}
    return TokenCount(
        *(reported_tokens(provider, name, usage.get(name)) for name in ("prompt_tokens", "completion_tokens"))
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait: `retry-after` (seconds or an HTTP date), `retry-after-ms`, or the
    `x-ratelimit-reset-*` durations OpenAI sends ("1s", "6m0s", "20ms")."""
    seconds = parse_retry_after(headers.get("retry-after", ""))
    if seconds is None and (milliseconds := parse_retry_after(headers.get("retry-after-ms", ""))) is not None:
        seconds = milliseconds / 1000
    if seconds is None:
        resets = [
            _duration(headers.get(name, ""))
            for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        ]
        known = [reset for reset in resets if reset is not None]
        seconds = max(known) if known else None
    return seconds


def _duration(text: str) -> float | None:
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)
