"""Anthropic's Messages request at the hub's edge: read into the hub's own GenerationRequest, so it
runs on any provider exactly as a chat completion does, or refused by name.

Every top-level field is used, accepted without effect, or refused unless neutral; an unknown one is
a 400. `context_management` is accepted when it only clears earlier thinking (which the hub never
sends on), as Claude Code asks with every request; other context editing is refused by name. Content
blocks: text, image (base64 or URL), tool_use (an assistant's), tool_result (a user's, sent on as a
tool message before the rest of that user turn). `cache_control` on system blocks, tools and content
blocks is a cache breakpoint (at most 4, as Anthropic allows), which the Anthropic adapter sends on
and other dialects leave out. `thinking` and `output_config.effort` become reasoning_effort;
`output_config.format` becomes a JSON-schema response format. Answers are
written by gateway.anthropic_response.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from gateway import json_body
from gateway.openai_format import ChatRequest
from gateway.openai_messages import BadRequest, cache_of
from providers.base import GenerationRequest
from providers.chat import (
    MAX_CACHE_BREAKPOINTS,
    ImagePart,
    Message,
    Part,
    ResponseFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    cache_breakpoints,
    longest_ttl,
)

USED = {
    "model",
    "messages",
    "system",
    "max_tokens",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "context_management",
}
# Bookkeeping, and a top-level (automatic) cache_control hint: they change what Anthropic bills, not
# the answer. Breakpoints on blocks are sent on to Anthropic providers (providers/chat.py CACHE_TTLS).
IGNORED = {"metadata", "service_tier", "cache_control"}
# Anthropic's own machinery, which no other provider has and the hub cannot price: refused if set.
REFUSED = {
    "top_k": "top_k (no other provider has it)",
    "container": "container (Anthropic's code execution)",
    "mcp_servers": "mcp_servers (Anthropic's MCP connector)",
    "inference_geo": "inference_geo",
    "speed": "speed",
    "diagnostics": "diagnostics",
}
# Context editing that only clears earlier thinking: the hub never sends earlier thinking blocks to a
# provider (it neither writes them in answers nor takes them in requests), so there is none to clear.
# Claude Code sends {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]} with every request.
NO_EFFECT_EDITS = {"clear_thinking_20251015"}
# Thinking budgets read as the effort whose budget (providers/adapters/anthropic_format.py) covers them.
EFFORT_BUDGETS = (
    (1024, "minimal"),
    (2048, "low"),
    (8192, "medium"),
    (16384, "high"),
    (32768, "xhigh"),
)
TOOL_KEYS = {
    "name",
    "description",
    "input_schema",
    "type",
    "cache_control",
    "strict",
    "eager_input_streaming",
}
BLOCK_NO_EFFECT = {"cache_control"}


def parse(body: bytes) -> ChatRequest:
    """A POST /v1/messages body."""
    return _read(_load(body))


def parse_count(body: bytes) -> ChatRequest:
    """A POST /v1/messages/count_tokens body: a message request without max_tokens or stream."""
    data = _load(body)
    for name in ("max_tokens", "stream"):
        if name in data:
            raise BadRequest(f"{name}: Extra inputs are not permitted", param=name)
    return _read({**data, "max_tokens": 1})


def _load(body: bytes) -> dict[str, Any]:
    try:
        data = json_body.load(body)
    except json_body.BadBody as error:
        raise BadRequest(str(error), param=error.param, code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    return data


def _read(data: dict[str, Any]) -> ChatRequest:
    refused = [reason for name, reason in REFUSED.items() if data.get(name) not in (None, [], {})]
    for name in data:
        if name not in USED and name not in IGNORED and name not in REFUSED:
            raise BadRequest(f"{name}: Extra inputs are not permitted", param=name)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: Field required", param="model")
    max_tokens = data.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise BadRequest("max_tokens: Field required, a positive integer", param="max_tokens")
    stream = data.get("stream") or False
    if not isinstance(stream, bool):
        raise BadRequest("stream: must be true or false", param="stream")
    temperature = _number(data, "temperature")
    top_p = _number(data, "top_p")
    options: dict[str, Any] = {}
    if top_p is not None:
        options["top_p"] = float(top_p)
    options |= _stop(data.get("stop_sequences"))
    options |= _tools(data.get("tools"), data.get("tool_choice"))
    options |= _thinking(data.get("thinking"), data.get("output_config"))
    _context_management(data.get("context_management"))
    messages = _system(data.get("system")) + _messages(data.get("messages"))
    found = len(cache_breakpoints(messages, options.get("tools", ())))
    if found > MAX_CACHE_BREAKPOINTS:  # refused as Anthropic words it, whatever the provider
        raise BadRequest(
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {found}."
        )
    request_kwargs = dict(model=model, messages=messages, max_tokens=max_tokens)
    if temperature is not None:
        request_kwargs["temperature"] = float(temperature)
    request = GenerationRequest(**request_kwargs, **options)
    return ChatRequest(request, temperature, stream, include_usage=True, refused=refused)


def _number(data: dict, name: str) -> Decimal | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= 1:
        raise BadRequest(f"{name}: must be a number from 0 to 1", param=name)
    return Decimal(str(value)).quantize(Decimal("0.01")) if name == "temperature" else Decimal(str(value))


def _stop(raw: Any) -> dict[str, Any]:
    if raw is None or raw == []:
        return {}
    if not isinstance(raw, list) or not all(isinstance(item, str) and item for item in raw):
        raise BadRequest("stop_sequences: must be a list of non-empty strings", param="stop_sequences")
    if len(raw) > 4:
        # OpenAI's dialects take at most 4; the hub holds every provider to that.
        raise BadRequest("stop_sequences: this hub takes at most 4", param="stop_sequences")
    return {"stop": tuple(raw)}


def _system(raw: Any) -> tuple[Message, ...]:
    if raw is None or raw == "" or raw == []:
        return ()
    if isinstance(raw, str):
        return (Message("system", raw),)
    if isinstance(raw, list):
        texts = [_text_block(block, f"system[{n}]") for n, block in enumerate(raw)]
        caches = [cache_of(block, f"system[{n}]") for n, block in enumerate(raw)]
        if any(caches):  # each block its own system message, so that each breakpoint keeps its place
            return tuple(
                Message("system", text, cache=cache) for text, cache in zip(texts, caches, strict=True)
            )
        return (Message("system", "\n\n".join(texts)),)
    raise BadRequest("system: must be a string or a list of text blocks", param="system")


def _text_block(block: Any, param: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
        raise BadRequest(f"{param}: must be a text block", param=param)
    _check_keys(block, {"type", "text", "citations"}, param)
    if block.get("citations"):
        raise BadRequest(f"{param}: citations cannot be sent on by this hub", param=f"{param}.citations")
    return block["text"]


def _check_keys(block: dict, known: set[str], param: str) -> None:
    for key in block:
        if key not in known and key not in BLOCK_NO_EFFECT:
            raise BadRequest(f"{param}.{key}: Extra inputs are not permitted", param=f"{param}.{key}")


def _messages(raw: Any) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages: must be a non-empty list", param="messages")
    messages: list[Message] = []
    for index, item in enumerate(raw):
        param = f"messages[{index}]"
        role = item.get("role") if isinstance(item, dict) else None
        if role not in ("user", "assistant"):
            raise BadRequest(f"{param}.role: must be user or assistant", param=f"{param}.role")
        _check_keys(item, {"role", "content"}, param)
        content = item.get("content")
        if isinstance(content, str):
            messages.append(Message(role, content))
        elif isinstance(content, list):
            blocks = [_block(block, f"{param}.content[{n}]", role) for n, block in enumerate(content)]
            call_caches = [
                cache_of(raw_block, param)
                for block, raw_block in zip(blocks, content, strict=True)
                if isinstance(block, ToolCall)
            ]
            messages += _turn(role, blocks, longest_ttl(call_caches))
        else:
            raise BadRequest(
                f"{param}.content: must be a string or a list of blocks", param=f"{param}.content"
            )
    return tuple(messages)


def _turn(role: str, blocks: list[Part | ToolCall | Message], call_cache: str = "") -> list[Message]:
    """One Anthropic turn as hub messages: a user's tool results first (each a tool message), then
    the rest of the turn; an assistant's tool_use blocks as its tool calls (a cache breakpoint on
    one of them is kept at the end of the turn, after its last call)."""
    results = [block for block in blocks if isinstance(block, Message)]
    calls = tuple(block for block in blocks if isinstance(block, ToolCall))
    parts = [block for block in blocks if isinstance(block, TextPart | ImagePart)]
    content: str | tuple[Part, ...] = tuple(parts)
    if all(isinstance(part, TextPart) and not part.cache for part in parts):
        content = "".join(part.text for part in parts)
    turn = list(results)
    if content or calls or not results:
        turn.append(Message(role, content, tool_calls=calls, cache=call_cache))
    return turn


def _block(block: Any, param: str, role: str) -> Part | ToolCall | Message:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text":
        return TextPart(_text_block(block, param), cache_of(block, param))
    if kind == "image" and role == "user":
        return _image(block, param)
    if kind == "tool_use" and role == "assistant":
        _check_keys(block, {"type", "id", "name", "input"}, param)
        if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str):
            raise BadRequest(f"{param}: a tool_use block needs its id and name", param=param)
        if not isinstance(block.get("input"), dict):
            raise BadRequest(f"{param}.input: must be an object", param=f"{param}.input")
        return ToolCall(block["id"], block["name"], json.dumps(block["input"]))
    if kind == "tool_result" and role == "user":
        return _tool_result(block, param)
    where = f"in a {role} message" if kind in ("image", "tool_use", "tool_result") else "by this hub"
    raise BadRequest(f"{param}: content blocks of type {kind!r} are not supported {where}", param=param)


def _image(block: dict, param: str) -> ImagePart:
    _check_keys(block, {"type", "source"}, param)
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source.get("data"), str) and isinstance(source.get("media_type"), str):
        return ImagePart(f"data:{source['media_type']};base64,{source['data']}", cache=cache_of(block, param))
    if (
        kind == "url"
        and isinstance(source.get("url"), str)
        and source["url"].startswith(("https://", "http://"))
    ):
        return ImagePart(source["url"], cache=cache_of(block, param))
    raise BadRequest(f"{param}.source: an image is base64 data with its media_type, or a URL", param=param)


def _tool_result(block: dict, param: str) -> Message:
    _check_keys(block, {"type", "tool_use_id", "content", "is_error"}, param)
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequest(f"{param}.tool_use_id: Field required", param=f"{param}.tool_use_id")
    content = block.get("content") or ""
    cache = cache_of(block, param)
    if isinstance(content, list):
        # A breakpoint inside a result is kept at the end of the result (which the hub sends as one text).
        cache = cache or next(
            (c for n, i in enumerate(content) if (c := cache_of(i, f"{param}.content[{n}]"))), ""
        )
        content = "".join(_text_block(item, f"{param}.content[{n}]") for n, item in enumerate(content))
    if not isinstance(content, str):
        raise BadRequest(f"{param}.content: must be text or a list of text blocks", param=f"{param}.content")
    if block.get("is_error"):
        # Only Anthropic marks a failed tool; every other provider reads it from the result itself.
        content = f"Error: {content}"
    return Message("tool", content, tool_call_id=call_id, cache=cache)


def _tools(raw: Any, choice: Any) -> dict[str, Any]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise BadRequest("tools: must be a list", param="tools")
    tools = []
    for n, item in enumerate(raw):
        param = f"tools[{n}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{param}: must be an object", param=param)
        if item.get("type", "custom") not in ("custom", None):
            raise BadRequest(
                f"{param}: tools of type {item['type']!r} (Anthropic's server tools) are not supported "
                "by this hub; send custom tools with an input_schema.",
                param=f"{param}.type",
            )
        _check_keys(item, TOOL_KEYS, param)
        schema = item.get("input_schema")
        if not isinstance(item.get("name"), str) or not item["name"] or not isinstance(schema, dict):
            raise BadRequest(f"{param}: a tool needs a name and an input_schema object", param=param)
        strict = item.get("strict")
        tools.append(
            Tool(
                item["name"],
                str(item.get("description") or ""),
                schema,
                strict if isinstance(strict, bool) else None,
                cache_of(item, param),
            )
        )
    options: dict[str, Any] = {"tools": tuple(tools)} if tools else {}
    if choice is None:
        return options
    kind = choice.get("type") if isinstance(choice, dict) else None
    modes = {"auto": "auto", "any": "required", "none": "none", "tool": "function"}
    name = choice.get("name", "") if kind == "tool" else ""
    if kind not in modes or (kind == "tool" and name not in {tool.name for tool in tools}):
        raise BadRequest(
            "tool_choice: must be auto, any, none, or tool with one of the tools' names", param="tool_choice"
        )
    options["tool_choice"] = ToolChoice(modes[kind], name)
    if choice.get("disable_parallel_tool_use") is not None:
        options["parallel_tool_calls"] = not choice["disable_parallel_tool_use"]
    return options


def _thinking(thinking: Any, config: Any) -> dict[str, Any]:
    options: dict[str, Any] = {}
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if thinking is not None and kind not in ("enabled", "disabled", "adaptive"):
        raise BadRequest("thinking: type must be enabled, disabled or adaptive", param="thinking")
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
            raise BadRequest("thinking.budget_tokens: must be at least 1024", param="thinking.budget_tokens")
        options["reasoning_effort"] = next(
            (effort for limit, effort in EFFORT_BUDGETS if budget <= limit), "max"
        )
    elif kind == "adaptive":
        options["reasoning_effort"] = (
            "medium"  # the model decides how much; medium is every provider's default
        )
    if config is None:
        return options
    if not isinstance(config, dict) or set(config) - {"effort", "format"}:
        raise BadRequest("output_config: may hold effort and format", param="output_config")
    if config.get("effort") is not None:
        if config["effort"] not in ("low", "medium", "high", "xhigh", "max"):
            raise BadRequest(
                "output_config.effort: must be low, medium, high, xhigh or max", param="output_config"
            )
        options["reasoning_effort"] = config["effort"]
    form = config.get("format")
    if form is not None:
        if (
            not isinstance(form, dict)
            or form.get("type") != "json_schema"
            or not isinstance(form.get("schema"), dict)
        ):
            raise BadRequest("output_config.format: must be json_schema with a schema", param="output_config")
        options["response_format"] = ResponseFormat("json_schema", "response", form["schema"])
    return options


def _context_management(raw: Any) -> None:
    """Accepted when it asks for nothing the hub would have to do: edits that clear earlier thinking.
    Clearing tool results or compacting the conversation would change what the model reads: refused."""
    if raw is None:
        return
    if not isinstance(raw, dict) or set(raw) - {"edits"} or not isinstance(raw.get("edits", []), list):
        raise BadRequest(
            "context_management: must be an object with a list of edits", param="context_management"
        )
    for n, edit in enumerate(raw.get("edits", [])):
        param = f"context_management.edits[{n}]"
        kind = edit.get("type") if isinstance(edit, dict) else None
        if kind not in NO_EFFECT_EDITS:
            raise BadRequest(
                f"{param}: context editing of type {kind!r} (Anthropic's server-side context management) "
                "is not supported by this hub; only clear_thinking_20251015 is accepted.",
                param=f"{param}.type",
            )
        _check_keys(edit, {"type", "keep"}, param)
