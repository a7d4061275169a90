"""Google's Gemini API (generativelanguage.googleapis.com, v1beta)."""

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
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    "SAFETY": FinishReason.CONTENT_FILTER,
    "RECITATION": FinishReason.CONTENT_FILTER,
    "BLOCKLIST": FinishReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": FinishReason.CONTENT_FILTER,
    "SPII": FinishReason.CONTENT_FILTER,
}


class GeminiAdapter(ProviderAdapter):
    """generateContent and streamGenerateContent?alt=sse; the key in `x-goog-api-key` (never in the
    URL, where proxies and logs would keep it); the system prompt as `systemInstruction`."""

    dialect = "gemini"
    kind_name = "Google Gemini"
    default_endpoint = "https://generativelanguage.googleapis.com/v1beta"
    credential_fields = (CredentialField("api_key", "API key", placeholder="AIza..."),)

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        return {"x-goog-api-key": config.credential("api_key")}

    async def validate_credentials(self, config: ProviderConfig) -> None:
        await self.http_for(config).get_json("/models", deadline=config.validation_timeout)

    def is_chat_model(self, model_id: str) -> bool:
        return "embedding" not in model_id and "imagen" not in model_id and "aqa" not in model_id

    async def fetch_model_ids(self) -> list[str]:
        listing = await self.http.get_json("/models?pageSize=1000")
        return sorted(m["name"].removeprefix("models/") for m in listing.get("models", []))

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        answer = await self.http.post_json(f"/models/{request.model}:generateContent", self.payload(request))
        if "error" in answer:
            self._raise_error(500, {}, answer, "")
        candidate = (answer.get("candidates") or [{}])[0]
        blocked = not answer.get("candidates") and (answer.get("promptFeedback") or {}).get("blockReason")
        return GenerationResponse(
            content=_text(candidate),
            usage=_usage(self.display_name, answer.get("usageMetadata")),
            model=answer.get("modelVersion", request.model),
            finish_reason=FinishReason.CONTENT_FILTER if blocked else _finish(candidate.get("finishReason")),
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        path = f"/models/{request.model}:streamGenerateContent?alt=sse"
        usage, finish, model = TokenCount(0, 0), None, request.model
        async for event in self.http.post_sse(path, self.payload(request)):
            chunk = self.http.parse_json(event.data)
            if "error" in chunk:
                self._raise_error(int((chunk["error"] or {}).get("code") or 500), {}, chunk, event.data)
            model = chunk.get("modelVersion", model)
            if chunk.get("usageMetadata"):
                usage = _usage(self.display_name, chunk["usageMetadata"])  # cumulative: the last one counts
            for candidate in chunk.get("candidates") or []:
                if text := _text(candidate):
                    yield Delta(text)
                if candidate.get("finishReason"):
                    finish = _finish(candidate["finishReason"])
            if not chunk.get("candidates") and (chunk.get("promptFeedback") or {}).get("blockReason"):
                finish = FinishReason.CONTENT_FILTER
        # Gemini sends no end event: a finish reason, then a normally closed body, is the end.
        if finish is None:
            raise StreamInterrupted(self.display_name)
        yield Finished(usage, finish, model)

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "contents": [
                {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
                for m in request.conversation
            ]
        }
        if request.system_prompt:
            body["systemInstruction"] = {"parts": [{"text": request.system_prompt}]}
        generation: dict[str, Any] = {}
        if request.max_tokens is not None:
            generation["maxOutputTokens"] = request.max_tokens
        if request.temperature is not None:
            generation["temperature"] = request.temperature
        if generation:
            body["generationConfig"] = generation
        return body

    def raise_for_status(self, status: int, headers: Mapping[str, str], body: str) -> None:
        try:
            parsed = self.http.parse_json(body, status)
        except UnexpectedResponse:
            parsed = {}
        self._raise_error(status, headers, parsed if isinstance(parsed, dict) else {}, body)

    def _raise_error(self, status: int, headers: Mapping[str, str], parsed: dict, body: str) -> None:
        error = parsed.get("error") if isinstance(parsed.get("error"), dict) else {}
        message, code = str(error.get("message") or ""), error.get("status", "")
        reasons = {d.get("reason") for d in error.get("details") or [] if isinstance(d, dict)}
        name = self.display_name
        if status in (401, 403) or "API_KEY_INVALID" in reasons or "API key not valid" in message:
            raise InvalidCredentials(name, detail=message)
        if status == 402 or "exceeded your current quota" in message:
            raise QuotaExceeded(name, detail=message)
        if status == 429 or code == "RESOURCE_EXHAUSTED":
            raise RateLimited(name, retry_after=_retry_after(headers, error), detail=message)
        if status == 404 or code == "NOT_FOUND":
            found = re.search(r"models/([^\s,]+)", message)
            raise ModelNotAvailable(name, found.group(1) if found else "The model", detail=message)
        raise UnexpectedResponse(name, status, body or str(parsed), detail=message)


def _text(candidate: Mapping[str, Any]) -> str:
    parts = (candidate.get("content") or {}).get("parts") or []
    # Thought summaries are not the answer.
    return "".join(p.get("text", "") for p in parts if not p.get("thought"))


def _finish(reason: str | None) -> FinishReason:
    return FINISH_REASONS.get(reason or "", FinishReason.OTHER)


def _usage(provider: str, metadata: Mapping[str, Any] | None) -> TokenCount:
    metadata = metadata or {}
    count = {
        name: reported_tokens(provider, name, metadata.get(name))
        for name in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount")
    }
    return TokenCount(count["promptTokenCount"], count["candidatesTokenCount"] + count["thoughtsTokenCount"])


def _retry_after(headers: Mapping[str, str], error: Mapping[str, Any]) -> float | None:
    seconds = parse_retry_after(headers.get("retry-after", ""))
    if seconds is not None:
        return seconds
    for detail in error.get("details") or []:
        delay = str(detail.get("retryDelay", "")) if isinstance(detail, dict) else ""
        if delay.endswith("s"):
            return parse_retry_after(delay[:-1])
    return None
