"""OpenAI's Responses request at the hub's edge: `instructions` and `input` (a string or items:
messages with input_text / input_image / output_text parts, function_call and function_call_output)
written as the Chat Completions request they mean, then read by the chat format itself, so every
shared field is checked exactly as there. Fields of the Responses API's own are translated
(`max_output_tokens`, `text.format`, `text.verbosity`, `reasoning.effort`, function tools and
tool_choice, `store` and `previous_response_id` with gateway.response_store), accepted without
effect, or refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts.models import Team
from gateway import json_body, response_store
from gateway import openai_format as fmt
from gateway.openai_messages import BadRequest
from gateway.openai_response import json_bytes
from gateway.response_store import Conversation

SHARED = {
    "model",
    "temperature",
    "top_p",
    "stream",
    "parallel_tool_calls",
    "user",
    "metadata",
    "service_tier",
}
TRANSLATED = {
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "text",
    "max_output_tokens",
    "reasoning",
    "store",
    "previous_response_id",
}
IGNORED = {"safety_identifier", "prompt_cache_key", "prompt_cache_retention", "stream_options"}
REFUSED = {
    "conversation": (None, "conversation (Conversations objects: use previous_response_id)"),
    "background": (False, "background"),
    "include": ([], "include"),
    "truncation": ("disabled", "truncation other than disabled"),
    "max_tool_calls": (None, "max_tool_calls"),
    "top_logprobs": (None, "top_logprobs"),
    "prompt": (None, "prompt (stored prompt templates)"),
}
ROLES = {"user", "system", "developer", "assistant"}


@dataclass(frozen=True)
class Asked:
    """A Responses request read: the chat request the engine runs, whether to store the answer,
    this request's own input items (what is stored) and the conversation it continues."""

    chat: fmt.ChatRequest
    store: bool
    input_items: list[dict[str, Any]]
    previous: Conversation


def read(body: bytes, team: Team) -> Asked:
    """The request of a key of `team`: `previous_response_id` is looked up among its responses only."""
    data = load(body)
    store = data.get("store")
    if store is not None and not isinstance(store, bool):
        raise BadRequest("store must be true or false.", param="store")
    previous = _previous(team, data.get("previous_response_id"))
    chat = fmt.parse(json_bytes(chat_body(data, previous.items)))
    return Asked(chat, bool(store), input_items(data["input"]), previous)


def _previous(team: Team, previous_id: Any) -> Conversation:
    if previous_id is None:
        return Conversation()
    if not isinstance(previous_id, str) or not previous_id:
        raise BadRequest(
            "previous_response_id must be a response id (resp_...).", param="previous_response_id"
        )
    try:
        return response_store.conversation(team, previous_id)
    except response_store.NotFound as gone:
        message = f"Previous response with id '{previous_id}' not found."
        if gone.missing != previous_id:
            message = (
                f"Previous response with id '{previous_id}' continues '{gone.missing}', which is not "
                "found (deleted, or past its retention period)."
            )
        raise BadRequest(message, param="previous_response_id", code="previous_response_not_found") from None


def input_items(raw: Any) -> list[dict[str, Any]]:
    """The input as stored items (already checked by chat_body): a string becomes a user message."""
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}]
    return list(raw)


def load(body: bytes) -> dict[str, Any]:
    try:
        data = json_body.load(body)
    except json_body.BadBody as error:
        raise BadRequest(str(error), param=error.param, code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    return data


def chat_body(data: dict[str, Any], history: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The chat request of a Responses request; `history` (the stored conversation it continues)
    goes after the instructions and before the new input."""
    for name in data:
        if name not in SHARED | TRANSLATED | IGNORED and name not in REFUSED:
            raise BadRequest(f"Unknown parameter: '{name}'.", param=name)
    for name, (neutral, reason) in REFUSED.items():
        if data.get(name) not in (neutral, None):
            raise BadRequest(f"This hub does not support {reason}.", param=name, code="unsupported_parameter")
    chat = {name: data[name] for name in SHARED if name in data}
    earlier = _input(history, "previous_response_id") if history else []
    chat["messages"] = _instructions(data.get("instructions")) + earlier + _input(data.get("input"))
    chat["stream_options"] = {"include_usage": True} if data.get("stream") else None
    if data.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = data["max_output_tokens"]
    if data.get("tools"):
        chat["tools"] = _tools(data["tools"])
    if data.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(data["tool_choice"])
    chat |= _text(data.get("text"))
    reasoning = data.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict) or set(reasoning) - {"effort", "summary", "generate_summary"}:
            raise BadRequest("reasoning may hold effort (and summary).", param="reasoning")
        if reasoning.get("summary") or reasoning.get("generate_summary"):
            raise BadRequest("This hub does not support reasoning summaries.", param="reasoning.summary")
        if reasoning.get("effort") is not None:
            chat["reasoning_effort"] = reasoning["effort"]
    return {name: value for name, value in chat.items() if value is not None}


def _instructions(raw: Any) -> list[dict[str, Any]]:
    if raw is None or raw == "":
        return []
    if not isinstance(raw, str):
        raise BadRequest("instructions must be a string.", param="instructions")
    return [{"role": "developer", "content": raw}]


def _input(raw: Any, name: str = "input") -> list[dict[str, Any]]:
    if isinstance(raw, str) and raw:
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise BadRequest("input must be a non-empty string or list of items.", param="input")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        param = f"{name}[{index}]"
        kind = item.get("type", "message") if isinstance(item, dict) else None
        if kind == "message" and item.get("role") in ROLES:
            messages.append({"role": item["role"], "content": _content(item.get("content"), param)})
        elif kind == "function_call":
            _call(messages, item, param)
        elif kind == "function_call_output":
            output = item.get("output")
            if not isinstance(item.get("call_id"), str) or not isinstance(output, str):
                raise BadRequest(
                    f"{param}: a function_call_output needs its call_id and output text.", param=param
                )
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": output})
        else:
            raise BadRequest(
                f"{param}: items of type {kind!r} are not supported; send messages, function_call and "
                "function_call_output items.",
                param=param,
            )
    return messages


def _call(messages: list[dict[str, Any]], item: dict, param: str) -> None:
    """A function call the model made earlier: on the assistant message it belongs to (the one just
    before it, if that has no results after it), else on a message of its own."""
    name, arguments, call_id = item.get("name"), item.get("arguments"), item.get("call_id")
    if not all(isinstance(value, str) for value in (name, arguments, call_id)):
        raise BadRequest(f"{param}: a function_call needs its call_id, name and arguments.", param=param)
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    if messages and messages[-1]["role"] == "assistant":
        messages[-1].setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _content(raw: Any, param: str) -> str | list[dict[str, Any]]:
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, list):
        raise BadRequest(f"{param}.content must be a string or a list of parts.", param=f"{param}.content")
    parts = []
    for n, part in enumerate(raw):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "text", "text": part["refusal"]})
        elif kind == "input_image" and isinstance(part.get("image_url"), str):
            parts.append(
                {
                    "type": "image_url",
                    "image_url": {"url": part["image_url"], "detail": part.get("detail") or "auto"},
                }
            )
        else:
            raise BadRequest(
                f"{param}.content[{n}]: parts of type {kind!r} are not supported (file ids are refused: the hub "
                "keeps no files); send input_text, input_image with an image_url, or output_text.",
                param=f"{param}.content",
            )
    return parts


def _tools(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list):
        raise BadRequest("tools must be a list.", param="tools")
    tools = []
    for n, tool in enumerate(raw):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise BadRequest(
                f"tools[{n}]: tools of type {kind!r} (OpenAI's hosted tools) are not supported; send function tools.",
                param=f"tools[{n}].type",
            )
        function = {key: tool[key] for key in ("name", "description", "parameters", "strict") if key in tool}
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(raw: Any) -> Any:
    if isinstance(raw, dict) and raw.get("type") == "function":
        return {"type": "function", "function": {"name": raw.get("name")}}
    return raw


def _text(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(raw) - {"format", "verbosity"}:
        raise BadRequest("text may hold format and verbosity.", param="text")
    chat: dict[str, Any] = {}
    if raw.get("verbosity") is not None:
        chat["verbosity"] = raw["verbosity"]
    form = raw.get("format")
    if form is None or form == {"type": "text"}:
        return chat
    if not isinstance(form, dict) or form.get("type") not in ("json_object", "json_schema"):
        raise BadRequest("text.format type must be text, json_object or json_schema.", param="text.format")
    if form["type"] == "json_object":
        chat["response_format"] = {"type": "json_object"}
    else:
        spec = {key: form[key] for key in ("name", "schema", "strict", "description") if key in form}
        chat["response_format"] = {"type": "json_schema", "json_schema": spec}
    return chat
