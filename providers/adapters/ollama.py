"""Ollama's native API: /api/chat with NDJSON streaming, /api/tags for the model list."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

from providers.base import (
    CredentialField,
    Delta,
    Finished,
    FinishReason,
    GenerationRequest,
    Message,
    ModelInfo,
    ProviderAdapter,
    ProviderConfig,
    StreamEvent,
    TokenCount,
    ToolCallDelta,
    reported_tokens,
)
from providers.embedding import TEXT, EmbeddingRequest, Embeddings, input_tokens, vectors
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
OPTIONS = {
    "max_tokens": "num_predict",
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
# reasoning_effort as Ollama's `think`: off, or the level (models without levels take any as on).
THINK = {"none": False, "minimal": "low", "xhigh": "high", "max": "high"}


class OllamaAdapter(ProviderAdapter):
    """A local Ollama needs no key; the optional one is for an Ollama behind a proxy that asks for a
    bearer token. Local models are priced at zero by default, and an admin can price them."""

    dialect = "ollama"
    accepts = frozenset(OPTIONS) | {
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
    }
    validation_path = "/api/tags"  # no key to check: this proves the server answers
    kind_name = "Ollama"
    default_endpoint = "http://127.0.0.1:11434"
    credential_fields = (
        CredentialField(
            "api_key",
            "API key",
            required=False,
            help_text="Only for an Ollama behind a proxy that asks for one.",
        ),
    )

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        key = config.credential("api_key")
        return {"authorization": f"Bearer {key}"} if key else {}

    async def fetch_model_ids(self) -> list[str]:
        listing = await self.http.get_json("/api/tags")
        return sorted(model["name"] for model in listing.get("models", []))

    @classmethod
    def dialect_refusals(cls, request: GenerationRequest, info: ModelInfo) -> list[str]:
        refused = []
        if request.tool_choice is not None and request.tool_choice.mode in ("required", "function"):
            refused.append(f"tool_choice {request.tool_choice.mode} (Ollama lets the model decide)")
        if request.parallel_tool_calls is False:
            refused.append("parallel_tool_calls false")
        if request.n > 1:
            refused.append("n above 1")
        if any(not image.inline for message in request.messages for image in message.images):
            refused.append("image URLs (Ollama takes images inline: send them as data: URIs)")
        return refused

    embedding_inputs = frozenset({TEXT})

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """POST /api/embed. Ollama cuts an input over the model's context short without a word
        unless told not to: with `truncate` false it refuses it instead, and the refusal is passed on."""
        body: dict[str, Any] = {"model": request.model, "input": list(request.inputs), "truncate": False}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        answer = await self.http.post_json("/api/embed", body)
        if not isinstance(answer, dict):
            raise UnexpectedResponse(self.display_name, 200, problem="its answer was not a JSON object")
        found = vectors(self.display_name, answer.get("embeddings"), len(request.inputs))
        return Embeddings(found, input_tokens(self.display_name, answer.get("prompt_eval_count")))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        self.check(request)
        calls = 0
        body = {**self.payload(request), "stream": True}
        # Closed here when it returns, not left to the garbage collector (see openai.py's _stream_from).
        async with aclosing(self.http.post_ndjson("/api/chat", body, last=_done)) as chunks:
            async for chunk in chunks:
                if "error" in chunk:
                    self.raise_error(500, {}, chunk, str(chunk))
                message = chunk.get("message") or {}
                if text := message.get("content"):
                    yield Delta(text)
                for call in message.get("tool_calls") or []:
                    function = call.get("function") or {}
                    ident = call.get("id") or f"call_{uuid.uuid4().hex[:24]}"
                    yield ToolCallDelta(
                        calls, ident, function.get("name", ""), json.dumps(function.get("arguments") or {})
                    )
                    calls += 1
                if chunk.get("done"):
                    reason = DONE_REASONS.get(chunk.get("done_reason", ""), FinishReason.OTHER)
                    if calls and reason == FinishReason.STOP:
                        reason = FinishReason.TOOL_CALLS
                    yield Finished(
                        _usage(self.display_name, chunk), reason, chunk.get("model", request.model)
                    )
                    return
        raise StreamInterrupted(self.display_name)  # no done:true line: never a clean finish

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        names = {call.id: call.name for message in request.messages for call in message.tool_calls}
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [_message(m, names) for m in request.messages],
        }
        options = {
            key: getattr(request, name) for name, key in OPTIONS.items() if getattr(request, name) is not None
        }
        if request.stop:
            options["stop"] = list(request.stop)
        if options:
            body["options"] = options
        # tool_choice "none" is said by not offering the tools.
        if request.tools and not (request.tool_choice and request.tool_choice.mode == "none"):
            body["tools"] = [
                {
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.schema},
                }
                for t in request.tools
            ]
        if request.response_format is not None:
            body["format"] = request.response_format.schema or "json"
        if request.reasoning_effort is not None:
            body["think"] = THINK.get(request.reasoning_effort, request.reasoning_effort)
        return body

    def raise_error(self, status: int, headers: Mapping[str, str], parsed: dict, body: str = "") -> None:
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


def _message(message: Message, names: Mapping[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"role": message.role, "content": message.named_text()}
    if message.images:
        body["images"] = [image.base64_data for image in message.images]
    if message.tool_calls:
        body["tool_calls"] = [
            {"function": {"name": c.name, "arguments": _arguments(c.arguments)}} for c in message.tool_calls
        ]
    if message.role == "tool":
        body["tool_name"] = names.get(message.tool_call_id, "")
    return body


def _arguments(arguments: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {"arguments": arguments}


def _done(chunk: Any) -> bool:
    """The stream's last line (its end is read before it is handed on, so the connection is reused)."""
    return isinstance(chunk, dict) and bool(chunk.get("done"))
