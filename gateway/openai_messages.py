"""The `messages` of a Chat Completions request, read into the hub's Message type.

Every key a message or a content part may carry is read, or refused by name: `name`, tool calls,
tool results, the legacy function messages, images, audio and file parts. Anthropic's
`cache_control` on a message or on its text and image parts (as LiteLLM and OpenRouter take it from
Cline and Roo Code) is carried as a cache breakpoint, which only the Anthropic dialect sends on; other
prompt-cache hints are accepted and have no effect on the answer.
"""

from __future__ import annotations

from typing import Any

from providers.chat import CACHE_TTLS, ImagePart, Message, OtherPart, Part, TextPart, ToolCall, longest_ttl

ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}
MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "developer": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "function_call", "refusal"},
    "tool": {"role", "content", "tool_call_id"},
    "function": {"role", "content", "name"},
}
# Hints for a provider's prompt cache: they change what a request costs later, not its answer
# (cache_control is read as a breakpoint: cache_of).
NO_EFFECT_KEYS = {"cache_control", "prompt_cache_breakpoint"}


class BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param, self.code = param, code


def cache_of(block: dict, param: str) -> str:
    """The cache breakpoint Anthropic's `cache_control` on a block asks for ("5m" or "1h"), or "" for
    none; BadRequest for one that is not Anthropic's."""
    value = block.get("cache_control")
    if value is None:
        return ""
    if not isinstance(value, dict) or value.get("type") != "ephemeral" or set(value) - {"type", "ttl"}:
        raise BadRequest(
            f'{param}.cache_control: must be {{"type": "ephemeral"}}', param=f"{param}.cache_control"
        )
    ttl = value.get("ttl", "5m")
    if ttl not in CACHE_TTLS:
        raise BadRequest(f"{param}.cache_control.ttl: must be 5m or 1h", param=f"{param}.cache_control.ttl")
    return ttl


def parse(raw: Any) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages must be a non-empty array.", param="messages")
    messages: list[Message] = []
    for index, item in enumerate(raw):
        messages.append(_message(item, f"messages[{index}]", messages))
    return tuple(messages)


def _message(item: Any, param: str, earlier: list[Message]) -> Message:
    role = item.get("role") if isinstance(item, dict) else None
    if role not in ROLES:
        raise BadRequest(
            f"{param}: role {role!r} is not supported (system, developer, user, assistant, tool).",
            param=f"{param}.role",
        )
    for key in item:
        if key not in MESSAGE_KEYS[role] and key not in NO_EFFECT_KEYS:
            if key == "audio":
                raise BadRequest(
                    f"{param}: earlier audio answers cannot be sent on by this hub.", param=f"{param}.audio"
                )
            raise BadRequest(
                f"{param}: unrecognized field {key!r} for a {role} message.", param=f"{param}.{key}"
            )
    name = item.get("name") or ""
    if not isinstance(name, str):
        raise BadRequest(f"{param}: name must be a string.", param=f"{param}.name")
    if role == "function":
        return _function_result(item, param, name, earlier)
    content = _content(item.get("content"), param, role)
    cache = cache_of(item, param)
    if not isinstance(content, str) and role != "user" and any(p.cache for p in content):
        # A breakpoint in a system, assistant or tool message's text is kept at the end of the message.
        content, cache = "".join(part.text for part in content), longest_ttl(p.cache for p in content)
    if role == "tool":
        call_id = item.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise BadRequest(
                f"{param}: a tool message needs the tool_call_id it answers.", param=f"{param}.tool_call_id"
            )
        return Message("tool", content, tool_call_id=call_id, cache=cache)
    if role != "assistant":
        return Message(ROLES[role], content, name=name, cache=cache)
    calls = _tool_calls(item, param, len(earlier))
    if not content and isinstance(item.get("refusal"), str):
        content = item["refusal"]  # an earlier refusal, sent back as what the assistant said
    return Message("assistant", content, name=name, tool_calls=calls, cache=cache)


def _content(content: Any, param: str, role: str) -> str | tuple[Part, ...]:
    if content is None:
        if role in ("assistant", "tool"):
            return ""
        raise BadRequest(f"{param}: content is required.", param=f"{param}.content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest(
            f"{param}: content must be a string or an array of content parts.", param=f"{param}.content"
        )
    parts = [_part(part, f"{param}.content[{n}]", role) for n, part in enumerate(content)]
    if all(isinstance(part, TextPart) and not part.cache for part in parts):
        return "".join(part.text for part in parts)  # text parts alone are one text
    return tuple(parts)


def _part(part: Any, param: str, role: str) -> Part:
    kind = part.get("type") if isinstance(part, dict) else type(part).__name__
    allowed = {"text", "refusal"} if role in ("assistant", "tool", "system", "developer") else None
    if allowed is not None and kind not in allowed:
        raise BadRequest(f"{param}: a {role} message takes text parts, not {kind!r}.", param=param)
    if kind in ("text", "refusal"):
        text = part.get(kind)
        if not isinstance(text, str):
            raise BadRequest(f"{param}: a {kind} part needs its {kind} as a string.", param=param)
        return TextPart(text, cache_of(part, param))
    if kind == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else None
        detail = image.get("detail", "auto") if isinstance(image, dict) else "auto"
        if not isinstance(url, str) or not url.startswith(("https://", "http://", "data:")):
            raise BadRequest(f"{param}: image_url.url must be an http(s) URL or a data: URI.", param=param)
        if detail not in ("auto", "low", "high"):
            raise BadRequest(f"{param}: image_url.detail must be auto, low or high.", param=param)
        return ImagePart(url, detail, cache_of(part, param))
    if kind in ("input_audio", "file"):
        body = part.get(kind)
        if not isinstance(body, dict):
            raise BadRequest(f"{param}: a {kind} part needs its {kind} object.", param=param)
        return OtherPart(kind, body)
    raise BadRequest(
        f"{param}: content parts of type {kind!r} are not supported; send text, image_url, "
        "input_audio or file.",
        param=param,
    )


def _tool_calls(item: dict, param: str, position: int) -> tuple[ToolCall, ...]:
    raw = item.get("tool_calls") or []
    legacy = item.get("function_call")
    if legacy is not None:
        # The legacy form has no id: one is made up, and the function result that follows names it.
        raw = [*raw, {"id": f"call_legacy_{position}", "type": "function", "function": legacy}]
    if not isinstance(raw, list):
        raise BadRequest(f"{param}: tool_calls must be an array.", param=f"{param}.tool_calls")
    calls = []
    for n, call in enumerate(raw):
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(call, dict)
            or call.get("type", "function") != "function"
            or not isinstance(function, dict)
        ):
            raise BadRequest(
                f"{param}.tool_calls[{n}]: only function calls are supported.", param=f"{param}.tool_calls"
            )
        name, arguments = function.get("name"), function.get("arguments", "{}")
        if not isinstance(name, str) or not isinstance(arguments, str) or not isinstance(call.get("id"), str):
            raise BadRequest(
                f"{param}.tool_calls[{n}]: a call needs an id, a function name and its arguments "
                "as a JSON string.",
                param=f"{param}.tool_calls",
            )
        calls.append(ToolCall(call["id"], name, arguments))
    return tuple(calls)


def _function_result(item: dict, param: str, name: str, earlier: list[Message]) -> Message:
    """A legacy `function` message: the result of the latest call of that function."""
    for message in reversed(earlier):
        for call in message.tool_calls:
            if call.name == name:
                return Message("tool", _content(item.get("content"), param, "tool"), tool_call_id=call.id)
    raise BadRequest(f"{param}: no earlier function_call of {name!r} for this result.", param=f"{param}.name")
