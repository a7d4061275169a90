"""Google's Gemini API (generativelanguage.googleapis.com, v1beta)."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import AsyncIterator, Mapping
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
from providers.chat import ImagePart, Part, TextPart, fit_within
from providers.embedding import TEXT, EmbeddingRequest, Embeddings, vectors
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
    "MALFORMED_FUNCTION_CALL": FinishReason.OTHER,
}
SAMPLING = {
    "temperature": "temperature",
    "top_p": "topP",
    "max_tokens": "maxOutputTokens",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}
BATCH_EMBEDDINGS = 100  # the most requests batchEmbedContents takes in one call
TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "function": "ANY"}
# Thinking budgets for OpenAI's reasoning_effort (0 turns thinking off where a model allows it).
THINKING_BUDGETS = {
    "none": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": 32768,
    "max": 32768,
}


class GeminiAdapter(ProviderAdapter):
    """generateContent and streamGenerateContent?alt=sse; the key in `x-goog-api-key` (never in the
    URL, where proxies and logs would keep it); the system prompt as `systemInstruction`."""

    dialect = "gemini"
    accepts = frozenset(SAMPLING) | {
        "stop",
        "n",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
    }
    kind_name = "Google Gemini"
    default_endpoint = "https://generativelanguage.googleapis.com/v1beta"
    credential_fields = (CredentialField("api_key", "API key", placeholder="AIza..."),)

    def auth_headers(self, config: ProviderConfig) -> dict[str, str]:
        return {"x-goog-api-key": config.credential("api_key")}

    def is_chat_model(self, model_id: str) -> bool:
        return "embedding" not in model_id and "imagen" not in model_id and "aqa" not in model_id

    async def fetch_model_ids(self) -> list[str]:
        listing = await self.http.get_json("/models?pageSize=1000")
        return sorted(m["name"].removeprefix("models/") for m in listing.get("models", []))

    @classmethod
    def dialect_refusals(cls, request: GenerationRequest, info: ModelInfo) -> list[str]:
        refused = []
        if request.parallel_tool_calls is False:
            refused.append("parallel_tool_calls false")  # Gemini may always call several at once
        if any(not image.inline for message in request.messages for image in message.images):
            refused.append("image URLs (Gemini takes images inline: send them as data: URIs)")
        if request.reasoning_effort == "none" and "pro" in info.id:
            refused.append("reasoning_effort none (this model always thinks)")
        return refused

    @classmethod
    def image_tokens(cls, model: str, size: tuple[int, int] | None, detail: str) -> int:
        """Gemini's rule: 258 tokens for an image of at most 384 x 384, else 258 per 768-pixel tile
        (of the image scaled to fit 3072 x 3072, so a forged huge size cannot inflate it)."""
        width, height = fit_within(size or (3072, 3072), 3072)
        if width <= 384 and height <= 384:
            return 258
        return 258 * math.ceil(width / 768) * math.ceil(height / 768)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamEvent]:
        self.check(request)
        path = f"/models/{request.model}:streamGenerateContent?alt=sse"
        usage, finishes, model, calls = TokenCount(0, 0), {}, request.model, 0
        async for event in self.http.post_sse(path, self.payload(request)):
            chunk = self.http.parse_json(event.data)
            if "error" in chunk:
                self.raise_error(int((chunk["error"] or {}).get("code") or 500), {}, chunk, event.data)
            model = chunk.get("modelVersion", model)
            if chunk.get("usageMetadata"):
                usage = _usage(self.display_name, chunk["usageMetadata"])  # cumulative: the last one counts
            for candidate in chunk.get("candidates") or []:
                choice = int(candidate.get("index") or 0)
                for piece in _pieces(candidate, choice, calls):
                    calls += isinstance(piece, ToolCallDelta)
                    yield piece
                if candidate.get("finishReason"):
                    finishes[choice] = _finish(candidate["finishReason"], calls > 0)
            if not chunk.get("candidates") and (chunk.get("promptFeedback") or {}).get("blockReason"):
                finishes[0] = FinishReason.CONTENT_FILTER
        # Gemini sends no end event: a finish reason, then a normally closed body, is the end.
        if not finishes:
            raise StreamInterrupted(self.display_name)
        yield Finished(usage, finishes.get(0, FinishReason.OTHER), model, finishes)

    def payload(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"contents": _contents(request.conversation)}
        if request.system_prompt:
            body["systemInstruction"] = {"parts": [{"text": request.system_prompt}]}
        generation = {
            key: getattr(request, name)
            for name, key in SAMPLING.items()
            if getattr(request, name) is not None
        }
        if request.stop:
            generation["stopSequences"] = list(request.stop)
        if request.n > 1:
            generation["candidateCount"] = request.n
        if request.response_format is not None:
            generation["responseMimeType"] = "application/json"
            if request.response_format.schema:
                generation["responseJsonSchema"] = request.response_format.schema
        if request.reasoning_effort is not None:
            generation["thinkingConfig"] = {"thinkingBudget": THINKING_BUDGETS[request.reasoning_effort]}
        if generation:
            body["generationConfig"] = generation
        if request.tools:
            declarations = [
                {"name": t.name, "description": t.description, "parametersJsonSchema": t.schema}
                for t in request.tools
            ]
            body["tools"] = [{"functionDeclarations": declarations}]
        if request.tool_choice is not None:
            choice = request.tool_choice
            config: dict[str, Any] = {"mode": TOOL_MODES.get(choice.mode, "ANY")}
            if choice.mode == "function":
                config["allowedFunctionNames"] = [choice.name]
            body["toolConfig"] = {"functionCallingConfig": config}
        return body

    embedding_inputs = frozenset({TEXT})

    async def embed(self, request: EmbeddingRequest) -> Embeddings:
        """batchEmbedContents, BATCH_EMBEDDINGS inputs a call (one input is a batch of one). Gemini
        reports no token count for embeddings: the run is charged the hub's own count."""
        found: list[tuple[float, ...]] = []
        for start in range(0, len(request.inputs), BATCH_EMBEDDINGS):
            batch = request.inputs[start : start + BATCH_EMBEDDINGS]
            requests = [self._embedding(request, text) for text in batch]
            path = f"/models/{request.model}:batchEmbedContents"
            answer = await self.http.post_json(path, {"requests": requests})
            raw = answer.get("embeddings") if isinstance(answer, dict) else None
            values = (
                [i.get("values") if isinstance(i, dict) else None for i in raw]
                if isinstance(raw, list)
                else None
            )
            found += vectors(self.display_name, values, len(batch))
        return Embeddings(tuple(found), None)

    @staticmethod
    def _embedding(request: EmbeddingRequest, text: str) -> dict[str, Any]:
        one: dict[str, Any] = {"model": f"models/{request.model}", "content": {"parts": [{"text": text}]}}
        if request.dimensions is not None:
            one["outputDimensionality"] = request.dimensions
        return one

    def raise_error(self, status: int, headers: Mapping[str, str], parsed: dict, body: str = "") -> None:
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


def _contents(conversation: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Turns of "user" and "model"; a tool result is a functionResponse part in a user turn, named
    after the call it answers (Gemini matches results to calls by name)."""
    names = {call.id: call.name for message in conversation for call in message.tool_calls}
    contents: list[dict[str, Any]] = []
    for message in conversation:
        role = "model" if message.role == "assistant" else "user"
        if message.role == "tool":
            result = {
                "name": names.get(message.tool_call_id, ""),
                "response": {"result": _json_or_text(message.text)},
            }
            parts: list[dict[str, Any]] = [{"functionResponse": result}]
        else:
            parts = [
                _part(part, message.name if index == 0 else "") for index, part in enumerate(message.parts)
            ]
            parts += [
                {"functionCall": {"name": c.name, "args": _json_or_text(c.arguments)}}
                for c in message.tool_calls
            ]
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents


def _part(part: Part, name: str) -> dict[str, Any]:
    if isinstance(part, ImagePart):
        return {"inlineData": {"mimeType": part.media_type, "data": part.base64_data}}
    text = part.text if isinstance(part, TextPart) else ""
    return {"text": f"{name}: {text}" if name else text}


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pieces(candidate: Mapping[str, Any], choice: int, calls: int) -> list[StreamEvent]:
    """A candidate's text (thought summaries left out: they are not the answer) and function calls,
    which Gemini sends whole: each is one ToolCallDelta with all its arguments."""
    pieces: list[StreamEvent] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if part.get("text") and not part.get("thought"):
            pieces.append(Delta(part["text"], choice))
        elif "functionCall" in part:
            call = part["functionCall"]
            ident = call.get("id") or f"call_{uuid.uuid4().hex[:24]}"
            arguments = json.dumps(call.get("args") or {})
            calls += 1
            pieces.append(ToolCallDelta(calls - 1, ident, call.get("name", ""), arguments, choice))
    return pieces


def _finish(reason: str | None, called: bool) -> FinishReason:
    found = FINISH_REASONS.get(reason or "", FinishReason.OTHER)
    # Gemini says STOP after function calls: the client must hear that tools were called.
    return FinishReason.TOOL_CALLS if called and found == FinishReason.STOP else found


def _usage(provider: str, metadata: Mapping[str, Any] | None) -> TokenCount:
    """promptTokenCount includes the cached part; thoughts are output, priced as output."""
    metadata = metadata or {}

    def count(name: str) -> int:
        return reported_tokens(provider, name, metadata.get(name))

    thoughts = count("thoughtsTokenCount")
    return TokenCount(
        input=count("promptTokenCount") + count("toolUsePromptTokenCount"),
        output=count("candidatesTokenCount") + thoughts,
        cache_read=count("cachedContentTokenCount"),
        reasoning=thoughts,
    )


def _retry_after(headers: Mapping[str, str], error: Mapping[str, Any]) -> float | None:
    seconds = parse_retry_after(headers.get("retry-after", ""))
    if seconds is not None:
        return seconds
    for detail in error.get("details") or []:
        delay = str(detail.get("retryDelay", "")) if isinstance(detail, dict) else ""
        if delay.endswith("s"):
            return parse_retry_after(delay[:-1])
    return None
