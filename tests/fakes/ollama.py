"""A fake Ollama: /api/tags and /api/chat (JSON, and NDJSON streams).

Run by hand: `python -m tests.fakes.ollama --port 8126 --key ""` (an empty key: no key needed).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tests.fakes.openai import fake_vector
from tests.fakes.server import FakeProvider, Plan, RecordedRequest, Reply, StreamReply, plan, serve_forever

MODELS = ["llama3.2:latest", "qwen2.5-coder:7b", "qwen2.5vl:7b", "mistral:latest"]
EMBEDDING_DIMENSIONS = {"nomic-embed-text:latest": 768, "all-minilm:latest": 384}


class FakeOllama(FakeProvider):
    """Without keys (api_keys containing "") anyone may call, as with a local Ollama; with keys, a
    bearer token is required, as a proxy in front of Ollama would."""

    name = "ollama"
    prefix = ""

    def route(self, request: RecordedRequest) -> Reply | StreamReply:
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        if "" not in self.api_keys and key not in self.api_keys:
            return Reply(401, {"error": "unauthorized"})
        if request.method == "GET" and request.path == "/api/tags":
            models = [
                {"name": m, "model": m, "size": 2019393189, "details": {"family": m.split(":")[0]}}
                for m in MODELS
            ]
            return Reply(200, {"models": models})
        if request.method == "POST" and request.path == "/api/chat":
            return self.chat(request.body)
        if request.method == "POST" and request.path == "/api/embed":
            return self.embed(request.body)
        return Reply(404, {"error": "404 page not found"})

    def chat(self, body: Any) -> Reply | StreamReply:
        model = body.get("model", "")
        if model not in MODELS:
            return Reply(404, {"error": f'model "{model}" not found, try pulling it first'})
        limit = (body.get("options") or {}).get("num_predict")
        decided = self.decide(body)
        decided.text = self.stopped(decided.text, (body.get("options") or {}).get("stop"))[0]  # "stop"
        pieces, reason = self.words(decided.text), "stop"
        if limit is not None and limit < self.count_tokens(decided.text):
            pieces, reason = pieces[: max(1, limit)], "length"
        prompt = sum(self.count_tokens(m.get("content", "")) for m in body.get("messages", [])) + 5
        prompt += self.count_tokens(json.dumps(body["tools"])) if body.get("tools") else 0
        calls = (
            [{"function": {"name": decided.tool, "arguments": decided.arguments}}] if decided.calls else []
        )
        generated = self.count_tokens("".join(pieces) + (json.dumps(decided.arguments) if calls else ""))
        final = {
            "model": model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": reason,
            "total_duration": 5191566416,
            "load_duration": 2154458,
            "prompt_eval_count": prompt,
            "prompt_eval_duration": 383809000,
            "eval_count": generated,
            "eval_duration": 4799921000,
        }
        if body.get("stream", True):
            lines = [
                {
                    "model": model,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": p},
                    "done": False,
                }
                for p in pieces
            ]
            if calls:  # Ollama sends a tool call whole, in a line of its own
                lines.append(
                    {
                        "model": model,
                        "created_at": _now(),
                        "done": False,
                        "message": {"role": "assistant", "content": "", "tool_calls": calls},
                    }
                )
            return StreamReply(
                (json.dumps(line).encode() + b"\n" for line in [*lines, final]),
                content_type="application/x-ndjson",
            )
        final["message"]["content"] = "".join(pieces)
        if calls:
            final["message"]["tool_calls"] = calls
        return Reply(200, final)

    def embed(self, body: Any) -> Reply:
        """POST /api/embed as Ollama answers it: `embeddings` in input order, `prompt_eval_count`;
        with `truncate` false, an input over the context (here: 8,192 counted tokens) is an error."""
        model = body.get("model", "")
        if model in MODELS:
            return Reply(400, {"error": "this model does not support embeddings"})
        if model not in EMBEDDING_DIMENSIONS:
            return Reply(404, {"error": f'model "{model}" not found, try pulling it first'})
        inputs = [body["input"]] if isinstance(body.get("input"), str) else body.get("input") or []
        counts = [self.count_tokens(text) for text in inputs]
        if body.get("truncate") is False and any(count > 8192 for count in counts):
            return Reply(400, {"error": "the input length exceeds the context length"})
        size = body.get("dimensions") or EMBEDDING_DIMENSIONS[model]
        self.embedded.append(inputs)
        answer = {"model": model, "embeddings": [fake_vector(text, size) for text in inputs]}
        return Reply(
            200,
            {
                **answer,
                "total_duration": 14143917,
                "load_duration": 1019500,
                "prompt_eval_count": sum(counts),
            },
        )

    def decide(self, body: dict) -> Plan:
        messages = body.get("messages", [])
        tools = [(t["function"]["name"], t["function"].get("parameters")) for t in body.get("tools") or []]
        result = messages[-1].get("content") if messages and messages[-1].get("role") == "tool" else None
        format_ = body.get("format")
        images = sum(len(m.get("images") or []) for m in messages)
        schema = format_ if isinstance(format_, dict) else None
        return plan(self, tools, None, result, schema, format_ == "json", images)

    def failure(self, name: str) -> tuple[int, Any, dict[str, str]]:
        failures = {
            "invalid_key": (401, {"error": "unauthorized"}, {}),
            "forbidden": (403, {"error": "forbidden"}, {}),
            "rate_limited": (429, {"error": "too many requests"}, {"retry-after": "7"}),
            "model_not_found": (404, {"error": 'model "llama9" not found, try pulling it first'}, {}),
            "quota_exceeded": (402, {"error": "payment required"}, {}),
            "server_error": (500, {"error": "llama runner process has terminated: exit status 2"}, {}),
            "overloaded": (
                503,
                {"error": "server busy, please try again.  maximum pending requests exceeded"},
                {},
            ),
        }
        return failures[name]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


if __name__ == "__main__":
    serve_forever(FakeOllama)
