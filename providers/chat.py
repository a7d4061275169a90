"""What a conversation is made of, whatever the provider: messages with text, image and file parts,
tool calls and their results, the tools offered and the shape asked of the answer.

These are the hub's own types: the OpenAI format module builds them from a request, each adapter
writes them in its provider's dialect, and a run stores them as JSON (`to_json` / `from_json`), so
a run can be sent again to another model. Everything here is plain data.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from enum import StrEnum
from typing import Any

import imagesize

_DATA_URI = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[^,;]*)*;base64,(?P<data>.*)$", re.DOTALL)


# A prompt-cache breakpoint (Anthropic's cache_control): "5m" or "1h" caches the prompt up to and
# including the part, tool or message that carries it; "" none. Only the Anthropic dialect sends it on
# (and refuses "1h", whose writes the hub cannot price yet); for every other provider it is a hint
# without effect (OpenAI caches long prompts by itself).
CACHE_TTLS = ("5m", "1h")
# Anthropic takes at most this many cache breakpoints in one request.
MAX_CACHE_BREAKPOINTS = 4


@dataclass(frozen=True)
class TextPart:
    text: str
    cache: str = ""
    kind = "text"


@dataclass(frozen=True)
class ImagePart:
    """An image by URL: https://... (sent on as a URL where the provider fetches URLs itself; the
    hub never fetches it) or a data: URI with the bytes inline."""

    url: str
    detail: str = "auto"  # OpenAI's "low", "high" or "auto"
    cache: str = ""
    kind = "image"

    @property
    def inline(self) -> bool:
        return self.url.startswith("data:")

    @property
    def media_type(self) -> str:
        found = _DATA_URI.match(self.url)
        return (found.group("type") or "") if found else ""

    @property
    def base64_data(self) -> str:
        found = _DATA_URI.match(self.url)
        return found.group("data").strip() if found else ""

    def dimensions(self) -> tuple[int, int] | None:
        """Width and height read from an inline image's header, or None (a URL, or not an image)."""
        try:
            head = base64.b64decode(self.base64_data[:65536], validate=False)
        except (binascii.Error, ValueError):
            return None
        try:
            width, height = imagesize.get(io.BytesIO(head))
        except (ValueError, OSError):
            return None
        return (width, height) if width > 0 and height > 0 else None


@dataclass(frozen=True)
class OtherPart:
    """A content part the hub carries untranslated, for dialects that take it as it is (OpenAI's
    `input_audio` and `file`); every other dialect refuses it by name."""

    kind: str  # "input_audio", "file"
    body: Mapping[str, Any] = field(default_factory=dict)


Part = TextPart | ImagePart | OtherPart


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for: `arguments` is the JSON text as the model wrote it."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(frozen=True)
class Message:
    role: str  # "system", "user", "assistant" or "tool"
    content: str | tuple[Part, ...] = ""
    name: str = ""  # the speaker's name, when the client gave one
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""  # on a tool result: the call it answers
    cache: str = ""  # a cache breakpoint after the whole message (its last block)

    @property
    def parts(self) -> tuple[Part, ...]:
        if isinstance(self.content, str):
            return (TextPart(self.content),) if self.content else ()
        return self.content

    @property
    def text(self) -> str:
        """The text of the message (images and other parts left out)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    @property
    def images(self) -> tuple[ImagePart, ...]:
        if isinstance(self.content, str):
            return ()  # without building its TextPart: asked of every message as a run is priced
        return tuple(part for part in self.content if isinstance(part, ImagePart))

    def named_text(self) -> str:
        """The text with the speaker's name before it, for dialects that have no name field."""
        return f"{self.name}: {self.text}" if self.name else self.text

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": _content_json(self.content)}
        if self.name:
            data["name"] = self.name
        if self.tool_calls:
            data["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
            ]
        if self.tool_call_id:
            data["tool_call_id"] = self.tool_call_id
        if self.cache:
            data["cache"] = self.cache
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        content = data.get("content") or ""
        if isinstance(content, list):
            content = tuple(_part_from_json(part) for part in content)
        return cls(
            role=data["role"],
            content=content,
            name=data.get("name", ""),
            tool_calls=tuple(
                ToolCall(c["id"], c["name"], c["arguments"]) for c in data.get("tool_calls", [])
            ),
            tool_call_id=data.get("tool_call_id", ""),
            cache=data.get("cache", ""),
        )


def _content_json(content: str | tuple[Part, ...]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            parts.append({"type": "image", "url": part.url, "detail": part.detail})
        else:
            parts.append({"type": part.kind, "body": dict(part.body)})
        if getattr(part, "cache", ""):
            parts[-1]["cache"] = part.cache
    return parts


def _part_from_json(data: Mapping[str, Any]) -> Part:
    if data["type"] == "text":
        return TextPart(data["text"], data.get("cache", ""))
    if data["type"] == "image":
        return ImagePart(data["url"], data.get("detail", "auto"), data.get("cache", ""))
    return OtherPart(data["type"], data.get("body", {}))


@dataclass(frozen=True)
class Tool:
    """A function the model may call; `parameters` is its JSON schema."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] | None = None
    strict: bool | None = None
    cache: str = ""  # a cache breakpoint after the tool definitions up to this one

    @property
    def schema(self) -> Mapping[str, Any]:
        return self.parameters or {"type": "object", "properties": {}}


@dataclass(frozen=True)
class ToolChoice:
    """ "auto", "none", "required" (some tool), or "function" with the one tool's name."""

    mode: str
    name: str = ""


@dataclass(frozen=True)
class ResponseFormat:
    """ "json_object" (any JSON object) or "json_schema" (this schema; `strict` as the client asked)."""

    type: str
    name: str = "response"
    schema: Mapping[str, Any] | None = None
    description: str = ""
    strict: bool | None = None


class Feature(StrEnum):
    """What a model accepts besides text, declared in the catalogue: a request that needs a feature
    the model lacks is refused by name, never sent to fail (or be ignored) upstream."""

    TOOLS = "tools"
    STRUCTURED_OUTPUT = "structured_output"  # response_format json_schema
    IMAGES = "images"
    AUDIO = "audio"  # input_audio content parts
    FILES = "files"  # file content parts (PDFs)


# What each capability means in a refusal: "anthropic/claude-haiku-4-5 does not accept audio input".
CAPABILITY_NAMES = {
    Feature.TOOLS: "tools",
    Feature.STRUCTURED_OUTPUT: "response_format json_schema",
    Feature.IMAGES: "image input",
    Feature.AUDIO: "audio input",
    Feature.FILES: "file input",
    "reasoning": "reasoning_effort",
}


# How the model pickers name what a model accepts besides text ("GPT-4o mini · tools, JSON schema, images").
FEATURE_LABELS = {
    "tools": "tools",
    "structured_output": "JSON schema",
    "images": "images",
    "audio": "audio",
    "files": "files",
    "reasoning": "reasoning",
}


def features_label(capabilities: Any) -> str:
    return ", ".join(label for key, label in FEATURE_LABELS.items() if key in capabilities)


def capabilities_needed(request: Any) -> list[str]:
    """The capabilities a GenerationRequest needs of its model (asked 3 times a request: one pass
    over the messages, and text alone, a str, needs nothing: its parts are not built)."""
    tools, kinds = bool(request.tools), set()
    for message in request.messages:
        if message.tool_calls or message.role == "tool":
            tools = True
        if not isinstance(message.content, str):
            kinds.update(part.kind for part in message.parts)
    needed: list[str] = [Feature.TOOLS] if tools else []
    if request.response_format is not None and request.response_format.type == "json_schema":
        needed.append(Feature.STRUCTURED_OUTPUT)
    if kinds:
        needed += [feature for kind, feature in _PART_FEATURES.items() if kind in kinds]
    if request.reasoning_effort is not None:
        needed.append("reasoning")  # the catalogue's task type of models that think
    return needed


_PART_FEATURES = {"image": Feature.IMAGES, "input_audio": Feature.AUDIO, "file": Feature.FILES}


def fit_within(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """A size scaled down (never up) so that its longer side is at most `longest`."""
    width, height = size
    scale = min(1.0, longest / max(width, height))
    return max(1, int(width * scale)), max(1, int(height * scale))


def options_from_json(options: Mapping[str, Any]) -> dict[str, Any]:
    """GenerationRequest options from their stored JSON (GenerationRequest.options_json)."""
    rebuilt: dict[str, Any] = {}
    for name, value in options.items():
        if name == "tools":
            value = tuple(Tool(**tool) for tool in value)
        elif name == "tool_choice":
            value = ToolChoice(**value)
        elif name == "response_format":
            value = ResponseFormat(**value)
        elif name == "stop":
            value = tuple(value)
        rebuilt[name] = value
    return rebuilt


def json_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return [json_value(item) for item in value]
    if isinstance(value, Tool) and not value.cache:
        return {name: item for name, item in asdict(value).items() if name != "cache"}  # as stored before
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


def longest_ttl(ttls: Any) -> str:
    """The longest of some breakpoints' TTLs, for several breakpoints kept as one ("" for none)."""
    given = set(ttls)
    return next((ttl for ttl in reversed(CACHE_TTLS) if ttl in given), "")


def cache_breakpoints(messages: Any, tools: Any = ()) -> list[str]:
    """The prompt-cache breakpoints (their TTLs) that messages and tools carry, in prompt order."""
    marked = [tool.cache for tool in tools if tool.cache]
    for message in messages:
        marked += [part.cache for part in message.parts if getattr(part, "cache", "")]
        marked += [message.cache] if message.cache else []
    return marked
