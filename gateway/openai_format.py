"""OpenAI's Chat Completions schema at the hub's edge: reading a request, writing a response, a
stream chunk or an error, exactly as the official SDKs expect them.

A request field that would change the answer and that the hub cannot honour is refused with a 400
naming it, never silently dropped.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway import json_body
from providers.base import Message

# Accepted and used.
USED = {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "stream", "stream_options"}
# Accepted and ignored: they do not change the answer.
IGNORED = {"user", "metadata", "store", "service_tier"}
# Accepted only at the value that leaves the answer as it would be without them.
NEUTRAL = {"n": 1, "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0, "logprobs": False,
           "stop": None, "tools": None, "tool_choice": None, "functions": None, "function_call": None,
           "response_format": {"type": "text"}, "logit_bias": None, "parallel_tool_calls": None,
           "seed": None, "top_logprobs": None, "modalities": ["text"]}  # fmt: skip
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter", "tool_calls": "tool_calls"}


class BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param, self.code = param, code


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    max_tokens: int | None
    temperature: Decimal | None
    stream: bool
    include_usage: bool


def parse(body: bytes) -> ChatRequest:
    try:
        data = json_body.load(body)
    except json_body.BadBody as error:
        raise BadRequest(str(error), param=error.param, code="invalid_json") from None
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    for name, value in data.items():
        if name in USED or name in IGNORED:
            continue
        if name not in NEUTRAL:
            raise BadRequest(f"Unrecognized request argument supplied: {name}", param=name)
        if value not in (NEUTRAL[name], None) and not (value == [] and NEUTRAL[name] is None):
            raise BadRequest(
                f"{name} is not supported by this hub; send the request without it.",
                param=name, code="unsupported_parameter",
            )  # fmt: skip
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("you must provide a model parameter", param="model")
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        raise BadRequest("max_tokens must be a positive integer.", param="max_tokens")
    temperature = data.get("temperature")
    if temperature is not None:
        if (
            not isinstance(temperature, int | float)
            or isinstance(temperature, bool)
            or not 0 <= temperature <= 2
        ):
            raise BadRequest("temperature must be a number from 0 to 2.", param="temperature")
        temperature = Decimal(str(temperature)).quantize(Decimal("0.01"))
    stream = data.get("stream") or False
    if not isinstance(stream, bool):
        raise BadRequest("stream must be true or false.", param="stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict) or set(options) - {"include_usage", "include_obfuscation"}:
        raise BadRequest("stream_options may only hold include_usage.", param="stream_options")
    return ChatRequest(
        model=model,
        messages=_messages(data.get("messages")),
        max_tokens=max_tokens,
        temperature=temperature,
        stream=stream,
        include_usage=bool(options.get("include_usage")),
    )


def _messages(raw: Any) -> tuple[Message, ...]:
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages must be a non-empty array.", param="messages")
    messages = []
    for index, item in enumerate(raw):
        param = f"messages[{index}]"
        if not isinstance(item, dict) or item.get("role") not in ROLES:
            role = item.get("role") if isinstance(item, dict) else None
            raise BadRequest(f"{param}: role {role!r} is not supported (system, developer, user, assistant).",
                             param=f"{param}.role")  # fmt: skip
        if item.get("tool_calls") or item.get("function_call"):
            raise BadRequest(f"{param}: tool calls are not supported by this hub.", param=param)
        messages.append(Message(ROLES[item["role"]], _text(item.get("content"), param)))
    return tuple(messages)


def _text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadRequest(f"{param}: content parts of type {kind!r} are not supported; send text.",
                                 param=f"{param}.content")  # fmt: skip
            texts.append(part["text"])
        return "".join(texts)
    raise BadRequest(
        f"{param}: content must be a string or an array of text parts.", param=f"{param}.content"
    )


# ---- responses


def completion_id(run_uuid) -> str:
    return f"chatcmpl-{run_uuid.hex}"


def finish_reason(reason: str) -> str:
    return FINISH.get(str(reason), "stop")


def usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens}  # fmt: skip


def completion(run, model: str, reason: str) -> dict[str, Any]:
    return {
        "id": completion_id(run.uuid),
        "object": "chat.completion",
        "created": int(run.created_at.timestamp()) if run.created_at else int(time.time()),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": run.output, "refusal": None},
            "logprobs": None,
            "finish_reason": finish_reason(reason),
        }],
        "usage": usage(run.input_tokens or 0, run.output_tokens or 0),
    }  # fmt: skip


class ChunkWriter:
    """SSE chunks of one completion. The envelope is encoded once; each delta costs one
    json.dumps of its text."""

    def __init__(self, run, model: str, include_usage: bool) -> None:
        self.include_usage = include_usage
        envelope = {"id": completion_id(run.uuid), "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model}  # fmt: skip
        if include_usage:
            envelope["usage"] = None
        head = json.dumps(envelope, separators=(",", ":"))[:-1]
        self._prefix = (head + ',"choices":[{"index":0,"delta":{"content":').encode()
        self._suffix = b'},"logprobs":null,"finish_reason":null}]}\n\n'
        self._head = head

    def _event(self, body: str) -> bytes:
        return b"data: " + body.encode() + b"\n\n"

    def role(self) -> bytes:
        return self._event(self._head + ',"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
                           '"logprobs":null,"finish_reason":null}]}')  # fmt: skip

    def delta(self, text: str) -> bytes:
        return b"data: " + self._prefix + json.dumps(text).encode() + self._suffix

    def finish(self, run, reason: str) -> bytes:
        reason = json.dumps(finish_reason(reason))
        out = self._event(
            self._head + f',"choices":[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":{reason}}}]}}'
        )
        if self.include_usage:
            head = self._head.replace(',"usage":null', "")
            totals = json.dumps(usage(run.input_tokens or 0, run.output_tokens or 0), separators=(",", ":"))
            out += self._event(head + f',"choices":[],"usage":{totals}}}')
        return out + b"data: [DONE]\n\n"

    @staticmethod
    def comment(text: str) -> bytes:
        """An SSE comment: clients ignore it; it keeps the connection alive while the hub retries."""
        return b": " + text.encode() + b"\n\n"


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_event(message: str, type_: str, code: str | None = None) -> bytes:
    return b"data: " + json.dumps(error_body(message, type_, code)).encode() + b"\n\n"


def retry_after_header(seconds: float | None) -> dict[str, str]:
    return {"retry-after": str(max(1, math.ceil(seconds)))} if seconds else {}
