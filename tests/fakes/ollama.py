"""A fake Ollama: /api/tags and /api/chat (JSON, and NDJSON streams).

Run by hand: `python -m tests.fakes.ollama --port 8126 --key ""` (an empty key: no key needed).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tests.fakes.server import FakeProvider, RecordedRequest, Reply, StreamReply, serve_forever

MODELS = ["llama3.2:latest", "qwen2.5-coder:7b", "mistral:latest"]


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
        return Reply(404, {"error": "404 page not found"})

    def chat(self, body: Any) -> Reply | StreamReply:
        model = body.get("model", "")
        if model not in MODELS:
            return Reply(404, {"error": f'model "{model}" not found, try pulling it first'})
        limit = (body.get("options") or {}).get("num_predict")
        pieces, reason = self.words(self.reply_text), "stop"
        if limit is not None and limit < self.count_tokens(self.reply_text):
            pieces, reason = pieces[: max(1, limit)], "length"
        prompt = sum(self.count_tokens(m.get("content", "")) for m in body.get("messages", [])) + 5
        final = {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""}, "done": True,
                 "done_reason": reason, "total_duration": 5191566416, "load_duration": 2154458,
                 "prompt_eval_count": prompt, "prompt_eval_duration": 383809000,
                 "eval_count": self.count_tokens("".join(pieces)), "eval_duration": 4799921000}  # fmt: skip
        if body.get("stream", True):
            lines = [{"model": model, "created_at": _now(), "message": {"role": "assistant", "content": p}, "done": False}
                     for p in pieces]  # fmt: skip
            return StreamReply((json.dumps(line).encode() + b"\n" for line in [*lines, final]),
                               content_type="application/x-ndjson")  # fmt: skip
        final["message"]["content"] = "".join(pieces)
        return Reply(200, final)

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
