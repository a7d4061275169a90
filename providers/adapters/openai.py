"""OpenAI's Chat Completions API, and every server that speaks it."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

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
from providers.chat import ImagePart, Message, Part, ResponseFormat, TextPart, Tool, fit_within, json_value
from providers.embedding import TEXT, TOKENS, EmbeddingRequest, Embeddings, input_tokens, vectors
from providers.errors import (
    InvalidCredentials,
    ModelNotAvailable,
    QuotaExceeded,
    RateLimited,
    StreamInterrupted,
    UnexpectedResponse,
)
from providers.http import SSEEvent, parse_retry_after

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
# Sent as they are: the hub's request format is OpenAI's.
PASSED = (
    "top_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "n",
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
    "reasoning_effort",
    "verbosity",
    "prediction",
)
# Image tokens (base, per 512-pixel tile) by OpenAI's published rules. A model not listed (an Azure
# deployment's own name, a compatible server's model) is counted by the costliest rule, gpt-4o-mini's,
# so that an estimate never falls short of what an image costs.
IMAGE_TOKENS = {"gpt-4o": (85, 170), "gpt-4.1": (85, 170), "o1": (75, 150), "gpt-4o-mini": (2833, 5667)}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class OpenAIAdapter(ProviderAdapter):
    """Chat Completions: `Authorization: Bearer`, SSE streaming with usage in the last chunk.

    The o-series reasoning models take `max_completion_tokens` and refuse `temperature`; the
    catalogue marks them with `reasoning = true`.
    """

    dialect = "openai"
    accepts = frozenset(PASSED) | {"stop", "tools", "tool_choice", "response_format"}
    tool_prompt_tokens = 20
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

    def is_chat_model(self, model_id: str) -> bool:
        return not any(word in model_id for word in NOT_CHAT)

    async def fetch_model_ids(self) -> list[str]:
        listing = await self.http.get_json("/models")
        return sorted(model["id"] for model in listing.get("data", []))

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        # _stream_from's own generator, not one more that passes each event on.
        return self._stream_from("/chat/completions", request)

    embedding_inputs = frozenset({TEXT, TOKENS})

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """POST /embeddings. Vectors are always asked for as floats: the hub encodes base64 itself."""
        answer = await self.http.post_json(self.embeddings_path(request.model), self.embedding_body(request))
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise UnexpectedResponse(self.display_name, 200, problem="its answer had no list of embeddings")
        ordered = sorted(
            data, key=lambda item: item.get("index") if isinstance(item.get("index"), int) else 0
        )
        found = vectors(self.display_name, [item.get("embedding") for item in ordered], len(request.inputs))
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
        return Embeddings(found, input_tokens(self.display_name, usage.get("prompt_tokens")))

    def embeddings_path(self, model: str) -> str:
        return "/embeddings"

    def embedding_body(self, request: EmbeddingRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model, "input": request.wire_inputs()}
        body["encoding_format"] = "float"
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        return body

    @classmethod
    def dialect_refusals(cls, request: GenerationRequest, info: ModelInfo) -> list[str]:
        if not info.reasoning:
            return []
        # OpenAI's reasoning models refuse these with a 400 of their own: refused here by name.
        defaults = {"temperature": 1, "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0}
        refused = [
            name for name, neutral in defaults.items() if getattr(request, name) not in (None, neutral)
        ]
        given = request.options_given()
        return refused + [name for name in ("logprobs", "top_logprobs", "logit_bias") if name in given]

    @classmethod
    def image_tokens(cls, model: str, size: tuple[int, int] | None, detail: str) -> int:
        """OpenAI's rule: 85 tokens at low detail; otherwise the image is fitted into 2048 x 2048,
        its shorter side scaled to 768, and each 512-pixel tile costs 170 more (gpt-4o-mini: 2,833
        and 5,667, about the same money at its lower price). An unknown size counts as the largest."""
        base, per_tile = IMAGE_TOKENS.get(model, IMAGE_TOKENS["gpt-4o-mini"])
        if detail == "low":
            return base
        width, height = fit_within(size or (768, 2048), 2048)
        scale = min(1.0, 768 / min(width, height))
        tiles = math.ceil(width * scale / 512) * math.ceil(height * scale / 512)
        return base + per_tile * tiles

    async def _stream_from(self, path: str, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        self.check(request)
        body = {**self.payload(request), "stream": True, "stream_options": {"include_usage": True}}
        finishes: dict[int, FinishReason] = {}
        usage, model = TokenCount(0, 0), request.model
        # Closed here when it returns, not left to the garbage collector: asyncio closes an async
        # generator that was dropped unfinished in a task of its own, woken through the loop's self-pipe.
        async with aclosing(self.http.post_sse(path, body, last=_done)) as events:
            async for event in events:
                if event.last:
                    yield Finished(usage, finishes.get(0, FinishReason.OTHER), model, finishes)
                    return
                chunk = self.http.parse_json(event.data)
                if "error" in chunk:
                    self.raise_error(500, {}, chunk)
                model = chunk.get("model") or model
                for choice in chunk.get("choices") or []:
                    for piece in _pieces(choice):
                        yield piece
                    if choice.get("finish_reason"):
                        reason = FINISH_REASONS.get(choice["finish_reason"], FinishReason.OTHER)
                        finishes[int(choice.get("index") or 0)] = reason
                if chunk.get("usage"):
                    usage = _usage(self.display_name, chunk["usage"])
        # The body ended without "[DONE]": the answer may be incomplete, so it is not a success.
        raise StreamInterrupted(self.display_name)

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        reasoning = any(m.id == request.model and m.reasoning for m in self.config.models)
        body: dict[str, Any] = {"model": request.model, "messages": [_message(m) for m in request.messages]}
        if request.max_tokens is not None:
            body["max_completion_tokens" if reasoning else "max_tokens"] = request.max_tokens
        if request.temperature is not None and not reasoning:
            body["temperature"] = request.temperature  # (1, the only value o-series take, is their default)
        given = request.options_given()  # once: it reads every field of the request
        for name in PASSED:
            if name in given:
                body[name] = json_value(getattr(request, name))
        if request.stop:
            body["stop"] = list(request.stop)
        if request.tools:
            body["tools"] = [_tool(tool) for tool in request.tools]
        if request.tool_choice is not None:
            choice = request.tool_choice
            body["tool_choice"] = (
                {"type": "function", "function": {"name": choice.name}}
                if choice.mode == "function"
                else choice.mode
            )
        if request.response_format is not None:
            body["response_format"] = _response_format(request.response_format)
        return body

    def raise_error(self, status: int, headers: Mapping[str, str], parsed: dict, body: str = "") -> None:
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
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    return TokenCount(
        input=reported_tokens(provider, "prompt_tokens", usage.get("prompt_tokens")),
        output=reported_tokens(provider, "completion_tokens", usage.get("completion_tokens")),
        cache_read=reported_tokens(provider, "cached_tokens", prompt.get("cached_tokens")),
        reasoning=reported_tokens(provider, "reasoning_tokens", completion.get("reasoning_tokens")),
    )


def _pieces(choice: Mapping[str, Any]) -> list[StreamEvent]:
    """The events of one choice of a chunk: its text (with logprobs when asked for), its tool calls."""
    index, delta, chosen = int(choice.get("index") or 0), choice.get("delta") or {}, choice.get("logprobs")
    logprobs = tuple(chosen.get("content") or ()) if chosen else ()
    text = delta.get("content") or ""
    pieces: list[StreamEvent] = [Delta(text, index, logprobs)] if text or logprobs else []
    if "tool_calls" not in delta:  # nearly every chunk: text alone
        return pieces
    for call in delta["tool_calls"] or []:
        function = call.get("function") or {}
        pieces.append(
            ToolCallDelta(
                int(call.get("index") or 0),
                call.get("id") or "",
                function.get("name") or "",
                function.get("arguments") or "",
                index,
            )
        )
    return pieces


def _message(message: Message) -> dict[str, Any]:
    body: dict[str, Any] = {"role": message.role}
    if isinstance(message.content, str):
        body["content"] = message.content if message.content or not message.tool_calls else None
    else:
        body["content"] = [_part(part) for part in message.content]
    if message.name:
        body["name"] = message.name
    if message.tool_calls:
        body["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in message.tool_calls
        ]
    if message.tool_call_id:
        body["tool_call_id"] = message.tool_call_id
    return body


def _part(part: Part) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        return {"type": "image_url", "image_url": {"url": part.url, "detail": part.detail}}
    return {"type": part.kind, part.kind: dict(part.body)}


def _tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.schema}
    if tool.description:
        function["description"] = tool.description
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _response_format(format_: ResponseFormat) -> dict[str, Any]:
    if format_.type != "json_schema":
        return {"type": format_.type}
    schema: dict[str, Any] = {"name": format_.name, "schema": format_.schema or {}}
    if format_.description:
        schema["description"] = format_.description
    if format_.strict is not None:
        schema["strict"] = format_.strict
    return {"type": "json_schema", "json_schema": schema}


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


def _done(event: SSEEvent) -> bool:
    """The stream's last event: OpenAI's `data: [DONE]`."""
    return event.data.strip() == "[DONE]"
