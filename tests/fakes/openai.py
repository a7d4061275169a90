"""A fake OpenAI: /v1/models and /v1/chat/completions (JSON and SSE), with OpenAI's own error bodies.

Run by hand: `python -m tests.fakes.openai --port 8123 --key sk-test-local-0000000000abcd`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import struct
import time
import uuid
from typing import Any

import tiktoken

from tests.fakes.server import (
    FakeProvider,
    Plan,
    RecordedRequest,
    Reply,
    StreamReply,
    plan,
    serve_forever,
    sse,
)

MODELS = ["gpt-4o", "gpt-4o-mini", "o1", "o3-mini", "gpt-4.1", "text-embedding-3-small"]
REASONING = {"o1", "o3-mini"}
# Embedding models and their native dimensions; only the text-embedding-3 ones take `dimensions`.
EMBEDDING_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "bge-m3": 1024,
}
SHORTENED = {"text-embedding-3-small", "text-embedding-3-large"}


def error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class FakeOpenAI(FakeProvider):
    """OpenAI itself, or any server speaking its API: set `prefix` ("/openai/v1" for Groq), `models`,
    and where the key goes (`auth_header`, `auth_scheme`).

    Misbehaviours of a broken upstream, set per test:
        fake.reported_usage = {"completion_tokens": 500}   # usage fields as sent, whatever was written
        fake.one_chunk = True                              # the whole answer in a single delta
        fake.endless = True                                # deltas forever, max_tokens ignored
        fake.empty_chunks_forever_next(every=0.05)         # chunks with no text, forever
    """

    name = "openai"
    models = MODELS
    auth_header = "authorization"
    auth_scheme = "Bearer"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reported_usage: dict[str, Any] | None = None
        self.one_chunk = False
        self.endless = False
        self.cached_tokens = 0  # prompt tokens the next answers report as read from the cache
        self.reasoning_tokens = 0  # of the output, reported as reasoning (reasoning models)

    def empty_chunks_forever_next(self, every: float = 0.05) -> None:
        empty = [{"index": 0, "delta": {"content": ""}, "finish_reason": None}]
        chunk = sse(
            {"id": "chatcmpl-empty", "object": "chat.completion.chunk", "model": "gpt-4o", "choices": empty}
        )
        self.stream_raw_next(itertools.repeat(chunk), every=every)

    def route(self, request: RecordedRequest) -> Reply | StreamReply:
        key = request.headers.get(self.auth_header, "")
        key = key.removeprefix(f"{self.auth_scheme} ") if self.auth_scheme else key
        if key not in self.api_keys:
            return Reply(401, self.failure("invalid_key", key)[1])
        path = request.path.split("?")[0].removeprefix(self.prefix)
        if request.method == "GET" and path == "/models":
            data = [
                {"id": m, "object": "model", "created": 1715367049, "owned_by": "system"} for m in self.models
            ]
            return Reply(200, {"object": "list", "data": data})
        if request.method == "POST" and path == "/chat/completions":
            return self.chat(request.body)
        if request.method == "POST" and path == "/embeddings":
            return self.embeddings(request.body)
        return Reply(404, error(f"Invalid URL ({request.method} {request.path})", "invalid_request_error"))

    def chat(self, body: Any) -> Reply | StreamReply:
        if not isinstance(body, dict) or "messages" not in body:
            return Reply(400, error("you must provide a model parameter", "invalid_request_error"))
        model = body.get("model", "")
        if model not in self.models:
            return Reply(404, self.failure("model_not_found", model=model)[1])
        if model in REASONING:
            for param in ("max_tokens", "temperature"):
                if param in body:
                    message = f"Unsupported parameter: '{param}' is not supported with this model."
                    return Reply(400, error(message, "invalid_request_error", "unsupported_parameter", param))
        limit = (
            None if self.ignore_max_tokens else body.get("max_completion_tokens") or body.get("max_tokens")
        )
        if unanswered := _orphan_results(body["messages"]):
            message = f"Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'. ({unanswered})"
            return Reply(400, error(message, "invalid_request_error", None, "messages"))
        decided = self.decide(body)
        decided.text = self.stopped(decided.text, body.get("stop"))[0]  # finish_reason "stop" all the same
        reply = decided.text if not decided.calls else ""
        pieces = self.words(reply)
        finish = "tool_calls" if decided.calls else "stop"
        if limit is not None and limit < self.count_tokens(reply):
            pieces, finish = pieces[: max(1, limit)], "length"
            if self.realistic:  # stopped after exactly `limit` tokens, as OpenAI stops
                encoding = tiktoken.get_encoding("o200k_base")
                pieces = self.words(encoding.decode(encoding.encode(self.reply_text)[:limit]))
        text = "".join(pieces)
        arguments = json.dumps(decided.arguments) if decided.calls else ""
        choices = int(body.get("n") or 1)
        usage = {
            "prompt_tokens": self.prompt_tokens(body["messages"])
            + (self.count_tokens(json.dumps(body["tools"])) if body.get("tools") else 0),
            "completion_tokens": (self.count_tokens(text + arguments) + self.reasoning_tokens) * choices,
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        usage["prompt_tokens_details"] = {"cached_tokens": min(self.cached_tokens, usage["prompt_tokens"])}
        usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens * choices}
        usage.update(self.reported_usage or {})
        ident = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if self.one_chunk:
            pieces = [text]
        if self.endless:
            pieces, finish = itertools.cycle(self.words(self.reply_text)), None
        call = (
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": decided.tool, "arguments": arguments},
            }
            if decided.calls
            else None
        )
        logprobs = bool(body.get("logprobs"))
        if body.get("stream"):
            include_usage = (body.get("stream_options") or {}).get("include_usage", False)
            chunks = self.chunks(
                ident, model, pieces, finish, usage if include_usage else None, call, choices, logprobs
            )
            return StreamReply(chunks)
        message = {"role": "assistant", "content": text if not call else None, "refusal": None}
        if call:
            message["tool_calls"] = [call]
        listed = [
            {
                "index": n,
                "message": message,
                "logprobs": _logprobs(pieces) if logprobs else None,
                "finish_reason": finish,
            }
            for n in range(choices)
        ]
        return Reply(
            200,
            {
                "id": ident,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": listed,
                "usage": usage,
                "system_fingerprint": "fp_fake",
            },
        )

    def embeddings(self, body: Any) -> Reply:
        """POST /embeddings as OpenAI answers it: one vector per input, in order, as floats or as
        base64 of little-endian float32; usage counts the prompt tokens."""
        if not isinstance(body, dict) or "input" not in body:
            return Reply(400, error("'input' is a required property", "invalid_request_error", None, "input"))
        model = body.get("model", "")
        if model not in self.models or model not in EMBEDDING_DIMENSIONS:
            return Reply(404, self.failure("model_not_found", model=model)[1])
        size = body.get("dimensions") or EMBEDDING_DIMENSIONS[model]
        if "dimensions" in body and model not in SHORTENED:
            message = "This model does not support specifying dimensions."
            return Reply(400, error(message, "invalid_request_error", None, "dimensions"))
        inputs = body["input"]
        if isinstance(inputs, str) or (inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        data, prompt_tokens = [], 0
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else " ".join(map(str, item))
            prompt_tokens += self.count_tokens(item) if isinstance(item, str) else len(item)
            vector = fake_vector(text, size)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        self.embedded.append(inputs)
        usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens, **(self.reported_usage or {})}
        return Reply(200, {"object": "list", "data": data, "model": model, "usage": usage})

    def decide(self, body: dict) -> Plan:
        messages = body["messages"]
        tools = [(t["function"]["name"], t["function"].get("parameters")) for t in body.get("tools") or []]
        choice = body.get("tool_choice")
        forced = (
            "" if choice == "none" else (choice["function"]["name"] if isinstance(choice, dict) else None)
        )
        result = messages[-1].get("content") if messages[-1].get("role") == "tool" else None
        format_ = body.get("response_format") or {}
        schema = (
            (format_.get("json_schema") or {}).get("schema") if format_.get("type") == "json_schema" else None
        )
        images = sum(
            1
            for m in messages
            if isinstance(m.get("content"), list)
            for part in m["content"]
            if part.get("type") == "image_url"
        )
        return plan(self, tools, forced, result, schema, format_.get("type") == "json_object", images)

    def prompt_tokens(self, messages: list[dict]) -> int:
        """OpenAI's published rule, with its real tokenizer: 3 tokens per message around its role and
        text, 3 to prime the reply (the hub counts a prompt the same way before a run)."""

        def text(message: dict) -> str:
            content = message.get("content") or ""
            if isinstance(content, str):
                return content
            return "".join(p["text"] if p.get("type") == "text" else json.dumps(p) for p in content)

        count = self.realistic_tokens
        return sum(3 + count(m["role"]) + count(text(m)) for m in messages) + 3

    def realistic_tokens(self, text: str) -> int:
        return len(tiktoken.get_encoding("o200k_base").encode(text, disallowed_special=()))

    def chunks(
        self,
        ident: str,
        model: str,
        pieces: list[str],
        finish: str,
        usage: dict | None,
        call: dict | None = None,
        choices: int = 1,
        logprobs: bool = False,
    ):
        def chunk(choices: list, **extra) -> bytes:
            return sse(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": choices,
                    **extra,
                }
            )

        for n in range(choices):
            yield chunk([{"index": n, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            for piece in pieces:
                yield chunk(
                    [
                        {
                            "index": n,
                            "delta": {"content": piece},
                            "finish_reason": None,
                            "logprobs": _logprobs([piece]) if logprobs else None,
                        }
                    ]
                )
            if call:
                first = {**call, "index": 0, "function": {"name": call["function"]["name"], "arguments": ""}}
                yield chunk([{"index": n, "delta": {"tool_calls": [first]}, "finish_reason": None}])
                arguments = call["function"]["arguments"]
                for start in range(0, len(arguments), 8):  # streamed in fragments, as OpenAI does
                    fragment = {"index": 0, "function": {"arguments": arguments[start : start + 8]}}
                    yield chunk([{"index": n, "delta": {"tool_calls": [fragment]}, "finish_reason": None}])
            yield chunk([{"index": n, "delta": {}, "finish_reason": finish}])
        if usage:
            yield chunk([], usage=usage)
        yield sse("[DONE]")

    def failure(self, name: str, key: str = "", model: str = "gpt-4o") -> tuple[int, Any, dict[str, str]]:
        shown = f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else key
        failures = {
            "invalid_key": (
                401,
                error(
                    f"Incorrect API key provided: {shown}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    "invalid_api_key",
                ),
                {},
            ),
            "forbidden": (
                403,
                error(
                    "You have insufficient permissions for this operation. Missing scopes: model.request.",
                    "invalid_request_error",
                ),
                {},
            ),
            "rate_limited": (
                429,
                error(
                    "Rate limit reached for gpt-4o in organization org-fake on requests per min (RPM): "
                    "Limit 500, Used 500, Requested 1. Please try again in 7s.",
                    "requests",
                    "rate_limit_exceeded",
                ),
                {
                    "retry-after": "7",
                    "x-ratelimit-reset-requests": "7s",
                    "x-ratelimit-remaining-requests": "0",
                },
            ),
            "model_not_found": (
                404,
                error(
                    f"The model `{model}` does not exist or you do not have access to it.",
                    "invalid_request_error",
                    "model_not_found",
                ),
                {},
            ),
            "quota_exceeded": (
                429,
                error(
                    "You exceeded your current quota, please check your plan and billing details.",
                    "insufficient_quota",
                    "insufficient_quota",
                ),
                {},
            ),
            "server_error": (
                500,
                error(
                    "The server had an error while processing your request. Sorry about that!", "server_error"
                ),
                {},
            ),
            "overloaded": (
                503,
                error("The engine is currently overloaded, please try again later", "server_error"),
                {},
            ),
        }
        return failures[name]


def fake_vector(text: str, size: int) -> list[float]:
    """A vector that depends on the text only, of values float32 holds exactly (k / 1024)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    return [((seed >> (i % 48)) % 2048 - 1024) / 1024 for i in range(size)]


def _orphan_results(messages: list[dict]) -> str:
    """The tool_call_id of a tool message that answers no earlier call, as OpenAI refuses it."""
    called = set()
    for message in messages:
        called |= {call["id"] for call in message.get("tool_calls") or []}
        if message.get("role") == "tool" and message.get("tool_call_id") not in called:
            return message.get("tool_call_id") or "no tool_call_id"
    return ""


def _logprobs(pieces: list[str]) -> dict:
    return {
        "content": [
            {"token": p, "logprob": -0.25, "bytes": list(p.encode()), "top_logprobs": []} for p in pieces
        ],
        "refusal": None,
    }


if __name__ == "__main__":
    serve_forever(FakeOpenAI)
