"""A fake Anthropic: /v1/models and /v1/messages (JSON and the SSE event stream), with Anthropic's errors.

Run by hand: `python -m tests.fakes.anthropic --port 8124 --key sk-ant-test-local-000000abcd`.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
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

# The list endpoint names models by dated id; the aliases our catalogue uses are accepted as well.
MODELS = {
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
}


# The shortest prefix Anthropic caches; a shorter one is neither written nor read, without an error.
MIN_CACHEABLE = {"claude-sonnet-4-5": 1024, "claude-opus-4-5": 4096, "claude-haiku-4-5": 4096}


def _text(content: str | list) -> str:
    """A turn's text as the model reads it (other blocks as their JSON)."""
    if isinstance(content, str):
        return content
    return "".join(b["text"] if b.get("type") == "text" else json.dumps(b) for b in content)


def _orphan_result(turns: list[dict]) -> tuple[int, str] | None:
    """(turn, id) of a tool_result whose tool_use is not in the turn just before, as Anthropic refuses it."""
    for number, turn in enumerate(turns):
        blocks = turn["content"] if isinstance(turn["content"], list) else []
        before = (
            turns[number - 1]["content"] if number and isinstance(turns[number - 1]["content"], list) else []
        )
        used = {block.get("id") for block in before if block.get("type") == "tool_use"}
        for block in blocks:
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in used:
                return number, block.get("tool_use_id", "")
    return None


def _prompt_blocks(body: dict) -> list[dict]:
    """The prompt in Anthropic's cache order: tools, then system, then messages, block by block."""
    system = body.get("system") or []
    blocks = list(body.get("tools") or [])
    blocks += [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
    for turn in body.get("messages", []):
        content = turn["content"]
        blocks += [{"type": "text", "text": content}] if isinstance(content, str) else content
    return blocks


def error(type_: str, message: str) -> dict:
    return {"type": "error", "error": {"type": type_, "message": message}}


class FakeAnthropic(FakeProvider):
    name = "anthropic"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error_after: int | None = None
        self.cache_read = 0  # prompt tokens the next answers report as read from the cache
        self.cache_write = 0  # and as written to it
        # The prompt cache, as Anthropic keeps it: the prefix up to a breakpoint -> its tokens.
        self.prompt_cache: dict[str, int] = {}

    def error_mid_stream_next(self, after: int) -> None:
        """The next stream sends an overloaded_error event after `after` text deltas."""
        self.error_after = after

    def route(self, request: RecordedRequest) -> Reply | StreamReply:
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
        if request.headers.get("x-api-key", "") not in self.api_keys:
            return Reply(401, error("authentication_error", "invalid x-api-key"), headers)
        if "anthropic-version" not in request.headers:
            return Reply(
                400, error("invalid_request_error", "anthropic-version: header is required"), headers
            )
        path = request.path.split("?")[0]
        if request.method == "GET" and path == "/v1/models":
            data = [
                {"type": "model", "id": dated, "display_name": alias, "created_at": "2025-09-29T00:00:00Z"}
                for alias, dated in MODELS.items()
            ]
            listing = {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
            return Reply(200, listing, headers)
        if request.method == "POST" and path == "/v1/messages":
            return self.messages(request.body, headers)
        return Reply(404, error("not_found_error", "Not found"), headers)

    def messages(self, body: Any, headers: dict[str, str]) -> Reply | StreamReply:
        if not isinstance(body, dict) or "max_tokens" not in body:
            return Reply(400, error("invalid_request_error", "max_tokens: Field required"), headers)
        if any(m.get("role") not in ("user", "assistant") for m in body.get("messages", [])):
            message = (
                'messages: Unexpected role "system". The Messages API accepts a top-level `system` parameter'
            )
            return Reply(400, error("invalid_request_error", message), headers)
        model = body.get("model", "")
        if model not in MODELS and model not in MODELS.values():
            return Reply(404, error("not_found_error", f"model: {model}"), headers)
        if (body.get("temperature") or 0) > 1:
            return Reply(400, error("invalid_request_error", "temperature: range: 0..1"), headers)
        if orphan := _orphan_result(body["messages"]):
            message = (
                f"messages.{orphan[0]}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{orphan[1]}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
            )
            return Reply(400, error("invalid_request_error", message), headers)
        breakpoints = [b for b in _prompt_blocks(body) if "cache_control" in b]
        if len(breakpoints) > 4:
            message = f"A maximum of 4 blocks with cache_control may be provided. Found {len(breakpoints)}."
            return Reply(400, error("invalid_request_error", message), headers)
        decided = self.decide(body)
        decided.text, sequence = self.stopped(decided.text, body.get("stop_sequences"))
        pieces = self.words(decided.text)
        stop = "tool_use" if decided.calls else "stop_sequence" if sequence else "end_turn"
        if body["max_tokens"] < self.count_tokens(decided.text):
            pieces, stop = pieces[: body["max_tokens"]], "max_tokens"
        text = "".join(pieces)
        call = None
        if decided.calls:
            call = {
                "type": "tool_use",
                "id": f"toolu_{uuid.uuid4().hex[:24]}",
                "name": decided.tool,
                "input": decided.arguments,
            }
        prompt = [
            _text(body.get("system") or ""),
            json.dumps(body.get("tools", "")) if body.get("tools") else "",
        ]
        prompt += [_text(m["content"]) for m in body["messages"]]
        total = sum(self.count_tokens(p) + 4 for p in prompt if p) + 3
        read, written = min(self.cache_read, total), min(self.cache_write, max(0, total - self.cache_read))
        if breakpoints:
            read, written = self.cached(body, total)
        usage = {
            "input_tokens": total - read - written,
            "output_tokens": self.count_tokens(text + (json.dumps(decided.arguments) if call else "")),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
            "cache_creation": {"ephemeral_5m_input_tokens": written, "ephemeral_1h_input_tokens": 0},
        }
        ident = f"msg_{uuid.uuid4().hex[:24]}"
        if body.get("stream"):
            events = self.events(ident, model, pieces, stop, usage, call, sequence or None)
            return StreamReply(events, headers=headers)
        content = ([{"type": "text", "text": text}] if text else []) + ([call] if call else [])
        return Reply(
            200,
            {
                "id": ident,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": sequence or None,
                "usage": usage,
            },
            headers,
        )

    def cached(self, body: dict, total: int) -> tuple[int, int]:
        """(read, written) prompt tokens: the longest prefix ending at a breakpoint that an earlier
        request wrote is read; the prefix up to the last breakpoint, past what was read, is written."""
        blocks = _prompt_blocks(body)
        ends = [n + 1 for n, block in enumerate(blocks) if "cache_control" in block]
        keys = {end: self.prefix_key(body, blocks[:end]) for end in ends}
        read = max((self.prompt_cache[key] for key in keys.values() if key in self.prompt_cache), default=0)
        last = keys[ends[-1]]
        size = min(total, sum(self.count_tokens(json.dumps(b)) for b in blocks[: ends[-1]]))
        alias = next((a for a, dated in MODELS.items() if body.get("model") in (a, dated)), "")
        if size < MIN_CACHEABLE.get(alias, 1024):
            return min(read, total), 0
        self.prompt_cache.setdefault(last, size)
        return min(read, total), max(0, self.prompt_cache[last] - read)

    def prefix_key(self, body: dict, blocks: list[dict]) -> str:
        plain = [{k: v for k, v in block.items() if k != "cache_control"} for block in blocks]
        return json.dumps([body.get("model"), plain], sort_keys=True)

    def decide(self, body: dict) -> Plan:
        turns = body["messages"]
        last = turns[-1]["content"] if turns else ""
        results = [b for b in last if b.get("type") == "tool_result"] if isinstance(last, list) else []
        tools = [(t["name"], t.get("input_schema")) for t in body.get("tools") or []]
        choice = body.get("tool_choice") or {}
        forced = {"none": "", "tool": choice.get("name")}.get(choice.get("type"))
        images = sum(
            1
            for m in turns
            if isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") == "image"
        )
        result = results[-1]["content"] if results else None
        return plan(self, tools, forced, result, None, False, images)

    def realistic_tokens(self, text: str) -> int:
        # Claude's tokenizer is not public; it gives somewhat more tokens than cl100k_base on prose.
        return math.ceil(len(tiktoken.get_encoding("cl100k_base").encode(text)) * 1.15)

    def events(
        self,
        ident: str,
        model: str,
        pieces: list[str],
        stop: str,
        usage: dict,
        call: dict | None = None,
        sequence: str | None = None,
    ):
        error_after, self.error_after = self.error_after, None
        start = {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        }
        yield sse({"type": "message_start", "message": start}, event="message_start")
        yield sse(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            event="content_block_start",
        )
        yield sse({"type": "ping"}, event="ping")
        for number, piece in enumerate(pieces):
            if number == error_after:
                yield sse(error("overloaded_error", "Overloaded"), event="error")
                return
            delta = {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            }
            yield sse(delta, event="content_block_delta")
        yield sse({"type": "content_block_stop", "index": 0}, event="content_block_stop")
        if call:
            block = {**call, "input": {}}
            yield sse(
                {"type": "content_block_start", "index": 1, "content_block": block},
                event="content_block_start",
            )
            arguments = json.dumps(call["input"])
            for begin in range(0, len(arguments), 8):
                delta = {"type": "input_json_delta", "partial_json": arguments[begin : begin + 8]}
                yield sse(
                    {"type": "content_block_delta", "index": 1, "delta": delta}, event="content_block_delta"
                )
            yield sse({"type": "content_block_stop", "index": 1}, event="content_block_stop")
        yield sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": sequence},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
            event="message_delta",
        )
        yield sse({"type": "message_stop"}, event="message_stop")

    def failure(self, name: str) -> tuple[int, Any, dict[str, str]]:
        reset = (datetime.now(UTC) + timedelta(seconds=7)).isoformat().replace("+00:00", "Z")
        credit = (
            "Your credit balance is too low to access the Anthropic API. "
            "Please go to Plans & Billing to upgrade or purchase credits."
        )
        failures = {
            "invalid_key": (401, error("authentication_error", "invalid x-api-key"), {}),
            "forbidden": (
                403,
                error(
                    "permission_error", "Your API key does not have permission to use the specified resource."
                ),
                {},
            ),
            "rate_limited": (
                429,
                error("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
                {"retry-after": "7", "anthropic-ratelimit-requests-reset": reset},
            ),
            "model_not_found": (404, error("not_found_error", "model: claude-nonexistent"), {}),
            "quota_exceeded": (400, error("invalid_request_error", credit), {}),
            "server_error": (500, error("api_error", "Internal server error"), {}),
            "overloaded": (529, error("overloaded_error", "Overloaded"), {}),
        }
        return failures[name]


if __name__ == "__main__":
    serve_forever(FakeAnthropic)
