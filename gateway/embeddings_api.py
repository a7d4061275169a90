"""OpenAI's Embeddings API, POST /v1/embeddings, on any provider that embeds (OpenAI, Azure,
OpenAI-compatible servers, Ollama, Gemini): the key, allowed models, the price of every input, the
budget reservation, the usage row and roll-up go as for chat (gateway.front and usage.embeddings).
"""

from __future__ import annotations

import base64
import struct
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway import api, front, json_body, ratelimits
from gateway.front import ApiError
from gateway.openai_response import json_response
from providers import configuration
from providers.base import TaskType
from providers.embedding import INPUT_NAMES, EmbeddingRequest, Embeddings
from providers.registry import registry
from usage import budgets, embeddings, runs
from usage.models import Run

FIELDS = {"model", "input", "dimensions", "encoding_format", "user"}  # "user": OpenAI's bookkeeping
ENCODINGS = ("float", "base64")
MAX_INPUTS = 2048  # OpenAI's own limit per request
LARGEST_TOKEN_ID = 2**31 - 1


@dataclass(frozen=True)
class Asked:
    model: str
    request: EmbeddingRequest  # its model is the provider's id, once resolved
    encoding: str


def parse(body: bytes) -> Asked:
    """The request body read and checked, or ApiError 400 naming the field."""
    try:
        data = json_body.load(body)
    except json_body.BadBody as error:
        raise ApiError(400, str(error), param=error.param) from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise ApiError(
            400,
            f"Unrecognized request argument supplied: {', '.join(unknown)}.",
            code="unsupported_parameter",
            param=unknown[0],
        )
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model is required: a provider/model id from /v1/models.", param="model")
    dimensions = data.get("dimensions")
    if dimensions is not None and (
        isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1
    ):
        raise ApiError(400, "dimensions must be a whole number of 1 or more.", param="dimensions")
    encoding = data.get("encoding_format") or "float"
    if encoding not in ENCODINGS:
        raise ApiError(400, "encoding_format must be float or base64.", param="encoding_format")
    return Asked(model, EmbeddingRequest(model, _inputs(data.get("input")), dimensions), encoding)


def _inputs(raw: Any) -> tuple[str, ...] | tuple[tuple[int, ...], ...]:
    """A string, a list of strings, a token array, or a list of token arrays; nothing empty."""
    if isinstance(raw, str):
        raw = [raw]
    elif isinstance(raw, list) and raw and all(_token(item) for item in raw):
        raw = [raw]  # one token array
    if not isinstance(raw, list) or not raw:
        raise ApiError(
            400,
            "input must be a string, a list of strings, or a list of token arrays, and not empty.",
            param="input",
        )
    if len(raw) > MAX_INPUTS:
        raise ApiError(400, f"input may hold at most {MAX_INPUTS:,} items.", param="input")
    if all(isinstance(item, str) for item in raw):
        if not all(raw):
            raise ApiError(400, "input may not hold an empty string.", param="input")
        return tuple(raw)
    if all(isinstance(item, list) and item and all(_token(t) for t in item) for item in raw):
        return tuple(tuple(item) for item in raw)
    raise ApiError(
        400,
        "input must be all strings or all token arrays (non-empty lists of token ids), not a mix.",
        param="input",
    )


def _token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= LARGEST_TOKEN_ID


@budgets.database_writable()  # a database that cannot be written: 503, never an HTML 500
def _prepare(request: HttpRequest) -> tuple[Run, Asked]:
    key = front.authenticate(request)
    asked = parse(request.body)
    ref = front.resolve(key, asked.model)
    try:
        available = runs.available_model(key.team, ref)
    except runs.RunRefused as refused:
        raise ApiError(400, str(refused), code="model_not_found", param="model") from None
    entry, dialect = available
    if TaskType.EMBEDDINGS not in entry.info.capabilities:
        raise ApiError(
            400,
            f"{ref} is not an embedding model: pick one from /v1/models marked for embeddings, "
            "or an admin adds the embeddings capability to it.",
            code="model_not_found",
            param="model",
        )
    taken = registry.adapter_class(dialect).embedding_inputs
    if asked.request.kind not in taken:
        wanted = "embeddings" if not taken else INPUT_NAMES[asked.request.kind]
        message = runs.UnsupportedFields(ref, [wanted]).args[0]
        raise ApiError(400, message, code="unsupported_parameter", param="input")
    wanted = EmbeddingRequest(entry.info.id, asked.request.inputs, asked.request.dimensions)
    try:
        run = embeddings.price_run(key.team, wanted, ref, available, key, request.request_id)
    except embeddings.InputTooLong as too_long:
        raise ApiError(400, str(too_long), code="context_length_exceeded", param="input") from None
    if run.max_cost_usd is None and not key.allow_unpriced:
        message = (
            f"{ref} has no known price, so its cost cannot be controlled. An admin sets its price "
            "in LLMHub, or allows this API key to run unpriced models."
        )
        embeddings.refuse(run, message)
        raise ApiError(400, message, code="unpriced_model", param="model")
    request.rate_limits = ratelimits.admit_run(run, key)
    return run, Asked(asked.model, wanted, asked.encoding)


@csrf_exempt
@configuration.pinned
@api.rate_limit_headers()
async def create(request: HttpRequest) -> HttpResponse:
    try:
        run, asked = await front.admit(request, lambda: _prepare(request))
    except ApiError as error:
        return error.response()
    embedded = await embeddings.embed(run, asked.request)
    if not embedded.ended.completed or embedded.result is None:
        return api.failure(embedded.ended).response()
    return json_response(answer(embedded.ended.run, embedded.result, asked.encoding))


def answer(run: Run, result: Embeddings, encoding: str) -> dict[str, Any]:
    """OpenAI's list of embeddings; base64 is the vector's little-endian float32 bytes, as OpenAI
    sends it (what its SDKs ask for by default, and decode)."""
    data = [
        {"object": "embedding", "index": index, "embedding": _encoded(vector, encoding)}
        for index, vector in enumerate(result.vectors)
    ]
    tokens = run.input_tokens or 0
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": run.model_used or run.model_requested, "usage": usage}


def _encoded(vector: tuple[float, ...], encoding: str) -> list[float] | str:
    if encoding == "float":
        return list(vector)
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
