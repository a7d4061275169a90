"""The hub's request in Anthropic's Messages dialect: content blocks, tool_use / tool_result,
images, tool_choice, thinking, and structured output through a forced tool.

Anthropic has no response_format: a JSON answer is asked for as a call of one extra tool whose
input schema is the wanted schema, and that call's input comes back as the answer's text.
"""

from __future__ import annotations

import json
from typing import Any

from providers.base import GenerationRequest, ModelInfo
from providers.chat import MAX_CACHE_BREAKPOINTS, ImagePart, Message, TextPart, cache_breakpoints

DEFAULT_MAX_TOKENS = 4096
# The tool a JSON answer is asked for through (Anthropic has no response_format).
ANSWER_TOOL = "json_answer"
# Thinking budgets for OpenAI's reasoning_effort; Anthropic's smallest budget is 1,024 tokens.
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768, "max": 63999}
MIN_THINKING = 1024


def refusals(request: GenerationRequest, info: ModelInfo) -> list[str]:
    refused = []
    if request.temperature is not None and request.temperature > 1:
        refused.append("temperature above 1")
    if request.n > 1:
        refused.append("n above 1")
    breakpoints = cache_breakpoints(request.messages, request.tools)
    if len(breakpoints) > MAX_CACHE_BREAKPOINTS:
        refused.append(f"more than {MAX_CACHE_BREAKPOINTS} cache_control breakpoints")
    effort = request.reasoning_effort
    if effort not in (None, "none"):
        if (request.max_tokens or info.max_output) <= MIN_THINKING:
            refused.append(f"reasoning_effort with max_tokens of {MIN_THINKING:,} or less")
        if request.temperature is not None and request.temperature != 1:
            refused.append("temperature with reasoning_effort")
        if request.tool_choice is not None and request.tool_choice.mode in ("required", "function"):
            refused.append("tool_choice required or named with reasoning_effort")
        if request.response_format is not None:
            refused.append("response_format with reasoning_effort")
        if any(message.tool_calls for message in request.messages):
            # Anthropic wants its signed thinking blocks back beside earlier tool calls, and the
            # OpenAI format has no place to carry them.
            refused.append("reasoning_effort after earlier tool calls")
    return refused


def payload(request: GenerationRequest, info: ModelInfo | None) -> dict[str, Any]:
    max_tokens = request.max_tokens or (info.max_output if info else None) or DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": max_tokens,
        "messages": messages(request.conversation),
    }
    system = [m for m in request.messages if m.role == "system"]
    if any(m.cache for m in system):  # as blocks, so that each breakpoint stays where the client put it
        body["system"] = [_cached({"type": "text", "text": m.named_text()}, m.cache) for m in system]
    elif request.system_prompt:
        body["system"] = request.system_prompt
    for name, key in (("temperature", "temperature"), ("top_p", "top_p")):
        if getattr(request, name) is not None:
            body[key] = getattr(request, name)
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    tools = [
        _cached({"name": t.name, "description": t.description, "input_schema": t.schema}, t.cache)
        for t in request.tools
    ]
    choice = _tool_choice(request)
    if request.response_format is not None:
        schema = request.response_format.schema or {"type": "object"}
        description = request.response_format.description or "Give the answer as this tool's input."
        tools.append({"name": ANSWER_TOOL, "description": description, "input_schema": schema})
        # Alongside other tools the model picks one of them or the answer; alone, the answer is forced.
        choice = {"type": "any"} if request.tools else {"type": "tool", "name": ANSWER_TOOL}
    if tools:
        body["tools"] = tools
    if choice is not None:
        if request.parallel_tool_calls is False and choice["type"] != "none":
            choice["disable_parallel_tool_use"] = True
        body["tool_choice"] = choice
    if request.reasoning_effort not in (None, "none"):
        budget = min(THINKING_BUDGETS[request.reasoning_effort], max_tokens - 1)
        body["thinking"] = {"type": "enabled", "budget_tokens": max(MIN_THINKING, budget)}
    return body


def _tool_choice(request: GenerationRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None:
        return {"type": "auto"} if request.tools and request.parallel_tool_calls is False else None
    if choice.mode == "function":
        return {"type": "tool", "name": choice.name}
    return {"type": {"auto": "auto", "none": "none", "required": "any"}[choice.mode]}


def messages(conversation: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Messages as Anthropic's alternating turns: tool results go in a user turn, and turns of the
    same role that follow each other are merged into one."""
    turns: list[dict[str, Any]] = []
    for message in conversation:
        role = "user" if message.role == "tool" else message.role
        blocks = _blocks(message)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        result = {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.text}
        return [_cached(result, message.cache)]
    blocks: list[dict[str, Any]] = []
    for index, part in enumerate(message.parts):
        if isinstance(part, TextPart):
            text = f"{message.name}: {part.text}" if message.name and index == 0 else part.text
            if text:
                blocks.append(_cached({"type": "text", "text": text}, part.cache))
        elif isinstance(part, ImagePart):
            blocks.append(_cached({"type": "image", "source": _image_source(part)}, part.cache))
    for call in message.tool_calls:
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": _arguments(call.arguments)}
        )
    if message.cache and blocks:
        blocks[-1] = _cached(blocks[-1], message.cache)
    return blocks


def _cached(block: dict[str, Any], cache: str) -> dict[str, Any]:
    """A block with Anthropic's cache breakpoint when it carries one. Always the 5-minute cache: a
    1-hour breakpoint is sent as one too, because its writes cost 2x input and the hub keeps one
    cache-write count, priced at the 5-minute rate (README, "The Messages API")."""
    if not cache:
        return block
    return {**block, "cache_control": {"type": "ephemeral"}}


def _image_source(image: ImagePart) -> dict[str, str]:
    if image.inline:
        return {"type": "base64", "media_type": image.media_type, "data": image.base64_data}
    return {"type": "url", "url": image.url}  # Anthropic fetches it itself: the hub never does


def _arguments(arguments: str) -> Any:
    """A tool call's JSON arguments as Anthropic's `input` object (text that is not JSON is kept)."""
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"value": value}
