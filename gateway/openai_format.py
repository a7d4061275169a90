"""OpenAI's Chat Completions request at the hub's edge: every field of it read into the hub's own
GenerationRequest, or refused by name.

Each field is in exactly one of the sets below: used (carried to the provider, translated by each
adapter, or refused by the adapter of a model that cannot honour it), accepted without effect on the
answer, or refused by the whole hub unless it has its neutral value. An unknown field is a 400.
Answers are written by gateway.openai_response.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gateway import json_body, openai_messages
from gateway.openai_messages import BadRequest
from providers.base import GenerationRequest, ResponseFormat, Tool, ToolChoice

# Carried to the provider (or refused by the model's adapter, by name).
USED = {
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "stream",
    "stream_options",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "n",
    "logprobs",
    "top_logprobs",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "functions",
    "function_call",
    "response_format",
    "reasoning_effort",
    "verbosity",
    "prediction",
}
# Accepted, with no effect on the answer: bookkeeping for OpenAI's own dashboards and caches.
IGNORED = {
    "user",
    "metadata",
    "store",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
}
# Refused by every model unless neutral, with the reason: what they ask cannot be priced or kept.
REFUSED = {
    "modalities": (["text"], "audio output (modalities)"),
    "audio": (None, "audio output (audio)"),
    "web_search_options": (None, "web_search_options (its search fees have no price in the hub)"),
    "moderation": (None, "moderation (a second, unpriced model)"),
}
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True)
class ChatRequest:
    request: GenerationRequest  # its model is the name as the client sent it, not yet resolved
    temperature: Decimal | None
    stream: bool
    include_usage: bool
    legacy_functions: bool = False  # asked with `functions`: answered with `function_call`
    refused: list[str] = field(default_factory=list)  # refused whatever the model

    @property
    def model(self) -> str:
        return self.request.model


def parse(body: bytes) -> ChatRequest:
    try:
        data = json_body.load(body)
    except json_body.BadBody as error:
        raise BadRequest(str(error), param=error.param, code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    refused = []
    for name, value in data.items():
        if name in REFUSED:
            neutral, reason = REFUSED[name]
            if value not in (neutral, None):
                refused.append(reason)
        elif name not in USED and name not in IGNORED:
            raise BadRequest(f"Unrecognized request argument supplied: {name}", param=name)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter", param="model")
    temperature = _number(data, "temperature", 0, 2)
    stream = data.get("stream") or False
    if not isinstance(stream, bool):
        raise BadRequest("stream must be true or false.", param="stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict) or set(options) - {"include_usage", "include_obfuscation"}:
        raise BadRequest("stream_options may only hold include_usage.", param="stream_options")
    legacy = "functions" in data or "function_call" in data
    request = GenerationRequest(
        model=model,
        messages=openai_messages.parse(data.get("messages")),
        max_tokens=_max_tokens(data),
        temperature=float(temperature) if temperature is not None else None,
        **_sampling(data),
        **_tools(data, legacy),
        response_format=_response_format(data.get("response_format")),
    )
    return ChatRequest(request, temperature, stream, bool(options.get("include_usage")), legacy, refused)


def _max_tokens(data: dict) -> int | None:
    value = data.get("max_completion_tokens", data.get("max_tokens"))
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise BadRequest("max_tokens must be a positive integer.", param="max_tokens")
    return value


def _number(data: dict, name: str, low: float, high: float) -> Decimal | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise BadRequest(f"{name} must be a number from {low:g} to {high:g}.", param=name)
    if not low <= value <= high:
        raise BadRequest(f"{name} must be a number from {low:g} to {high:g}.", param=name)
    return Decimal(str(value)).quantize(Decimal("0.01")) if name == "temperature" else Decimal(str(value))


def _integer(data: dict, name: str, low: int, high: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadRequest(f"{name} must be a whole number from {low:,} to {high:,}.", param=name)
    return value


def _sampling(data: dict) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, low, high in (("top_p", 0, 1), ("presence_penalty", -2, 2), ("frequency_penalty", -2, 2)):
        if (value := _number(data, name, low, high)) is not None:
            options[name] = float(value)
    for name, low, high in (("seed", -(2**63), 2**63 - 1), ("n", 1, 128), ("top_logprobs", 0, 20)):
        if (value := _integer(data, name, low, high)) is not None:
            options[name] = value
    stop = data.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and (not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop)):
        raise BadRequest("stop must be a string or an array of up to 4 strings.", param="stop")
    if stop and len(stop) > 4:
        raise BadRequest("stop may hold at most 4 sequences.", param="stop")
    if stop:
        options["stop"] = tuple(stop)
    bias = data.get("logit_bias")
    if bias is not None:
        if not isinstance(bias, dict) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) and -100 <= v <= 100 for v in bias.values()
        ):
            raise BadRequest("logit_bias must map token ids to numbers from -100 to 100.", param="logit_bias")
        if bias:
            options["logit_bias"] = {str(k): v for k, v in bias.items()}
    if data.get("logprobs") is not None and not isinstance(data["logprobs"], bool):
        raise BadRequest("logprobs must be true or false.", param="logprobs")
    if data.get("logprobs"):
        options["logprobs"] = True
    for name, allowed in (("reasoning_effort", EFFORTS), ("verbosity", ("low", "medium", "high"))):
        if data.get(name) is not None:
            if data[name] not in allowed:
                raise BadRequest(f"{name} must be one of {', '.join(allowed)}.", param=name)
            options[name] = data[name]
    if data.get("prediction") is not None:
        if not isinstance(data["prediction"], dict):
            raise BadRequest("prediction must be an object.", param="prediction")
        options["prediction"] = data["prediction"]
    return options


def _tools(data: dict, legacy: bool) -> dict[str, Any]:
    """`tools` and `tool_choice`, or the legacy `functions` and `function_call` read as them."""
    if legacy and ("tools" in data or "tool_choice" in data):
        raise BadRequest("Send tools or the legacy functions, not both.", param="functions")
    raw = data.get("functions") if legacy else data.get("tools")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise BadRequest(f"{'functions' if legacy else 'tools'} must be an array.", param="tools")
    tools = tuple(_tool(item, index, legacy) for index, item in enumerate(raw))
    names = {tool.name for tool in tools}
    options: dict[str, Any] = {"tools": tools} if tools else {}
    choice = _tool_choice(data.get("function_call") if legacy else data.get("tool_choice"), legacy, names)
    if choice is not None:
        options["tool_choice"] = choice
    parallel = data.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise BadRequest("parallel_tool_calls must be true or false.", param="parallel_tool_calls")
        options["parallel_tool_calls"] = parallel
    return options


def _tool(item: Any, index: int, legacy: bool) -> Tool:
    param = f"functions[{index}]" if legacy else f"tools[{index}]"
    function = item if legacy else (item.get("function") if isinstance(item, dict) else None)
    if not legacy and isinstance(item, dict) and item.get("type") != "function":
        raise BadRequest(
            f"{param}: tools of type {item.get('type')!r} are not supported by this hub; "
            "send function tools.",
            param=f"{param}.type",
        )
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
        raise BadRequest(f"{param}: a function needs a name.", param=param)
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadRequest(f"{param}: parameters must be a JSON schema object.", param=f"{param}.parameters")
    strict = function.get("strict")
    return Tool(
        function["name"],
        str(function.get("description") or ""),
        parameters,
        strict if isinstance(strict, bool) else None,
    )


def _tool_choice(raw: Any, legacy: bool, names: set[str]) -> ToolChoice | None:
    param = "function_call" if legacy else "tool_choice"
    if raw is None:
        return None
    if raw in ("auto", "none", "required") and not (legacy and raw == "required"):
        return ToolChoice(raw)
    name = None
    if isinstance(raw, dict):
        name = raw.get("name") if legacy else (raw.get("function") or {}).get("name")
        if not legacy and raw.get("type") != "function":
            raise BadRequest(
                f"{param} of type {raw.get('type')!r} is not supported by this hub.", param=param
            )
    if not isinstance(name, str) or name not in names:
        raise BadRequest(f"{param} must be auto, none, required or one of the tools by name.", param=param)
    return ToolChoice("function", name)


def _response_format(raw: Any) -> ResponseFormat | None:
    if raw is None or raw == {"type": "text"}:
        return None
    if not isinstance(raw, dict) or raw.get("type") not in ("json_object", "json_schema"):
        raise BadRequest(
            "response_format type must be text, json_object or json_schema.", param="response_format"
        )
    if raw["type"] == "json_object":
        return ResponseFormat("json_object")
    spec = raw.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise BadRequest("response_format.json_schema needs a name and a schema.", param="response_format")
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise BadRequest("response_format.json_schema.schema must be an object.", param="response_format")
    strict = spec.get("strict")
    return ResponseFormat(
        "json_schema",
        spec["name"],
        schema,
        str(spec.get("description") or ""),
        strict if isinstance(strict, bool) else None,
    )
