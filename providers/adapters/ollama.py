"""Ollama's native API: /api/chat with NDJSON streaming, /api/tags for the model list."""

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

DONE_REASONS = {"stop": FinishReason.STOP, "length": FinishReason.LENGTH}


class OllamaAdapter(ProviderAdapter):
    """A local Ollama needs no key; the optional one is for an Ollama behind a proxy that asks for a
    bearer token. Local models are priced at zero by default, and an admin can price them."""

    dialect = "ollama"
    kind_name = "Ollama"
    default_endpoint = "http://127.0.0.1:11434"
    credential_fields = (
        CredentialField(
            "api_key",
            "API key",
            required=False,
            help_text="Only for an Ollama behind a proxy that asks for one.",
        ),  # fmt: skip
    )

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        key = config.credential("api_key")
        return {"authorization": f"Bearer {key}"} if key else {}

    async def validate_credentials(self, config: ProviderConfig) -> None:
        # No key to check: this proves the server answers, and the proxy (if any) lets us in.
        await self.http_for(config).get_json("/api/tags", deadline=config.validation_timeout)

    async def fetch_model_ids(self) -> list[str]:
        listing = await self.http.get_json("/api/tags")
        return sorted(model["name"] for model in listing.get("models", []))

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        answer = await self.http.post_json("/api/chat", {**self.payload(request), "stream": False})
        return GenerationResponse(
            content=(answer.get("message") or {}).get("content", ""),
            usage=_usage(self.display_name, answer),
            model=answer.get("model", request.model),
            finish_reason=DONE_REASONS.get(answer.get("done_reason", ""), FinishReason.OTHER),
        )

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        async for chunk in self.http.post_ndjson("/api/chat", {**self.payload(request), "stream": True}):
            if "error" in chunk:
                self._raise_error(500, {}, chunk, str(chunk))
            if chunk.get("done"):
                reason = DONE_REASONS.get(chunk.get("done_reason", ""), FinishReason.OTHER)
                yield Finished(_usage(self.display_name, chunk), reason, chunk.get("model", request.model))
                return
            if text := (chunk.get("message") or {}).get("content"):
                yield Delta(text)
        raise StreamInterrupted(self.display_name)  # no done:true line: never a clean finish

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        options: dict[str, Any] = {}
        if request.max_tokens is not None:
            options["num_predict"] = request.max_tokens
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if options:
            body["options"] = options
        return body

    def raise_for_status(self, status: int, headers: Mapping[str, str], body: str) -> None:
        try:
            parsed = self.http.parse_json(body, status)
        except UnexpectedResponse:
            parsed = {}
        self._raise_error(status, headers, parsed if isinstance(parsed, dict) else {}, body)

    def _raise_error(self, status: int, headers: Mapping[str, str], parsed: dict, body: str) -> None:
        message = str(parsed.get("error") or "")
        name = self.display_name
        if status in (401, 403):
            raise InvalidCredentials(name, detail=message)
        if status == 429:
            raise RateLimited(
                name, retry_after=parse_retry_after(headers.get("retry-after", "")), detail=message
            )
        if status == 404 or "not found" in message:
            found = re.search(r'model "([^"]+)"', message)
            raise ModelNotAvailable(name, found.group(1) if found else "The model", detail=message)
        if status == 402:
            raise QuotaExceeded(name, detail=message)
        raise UnexpectedResponse(name, status, body, detail=message)


def _usage(provider: str, chunk: Mapping[str, Any]) -> TokenCount:
    return TokenCount(
        *(reported_tokens(provider, name, chunk.get(name)) for name in ("prompt_eval_count", "eval_count"))
    )
