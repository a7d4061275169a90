"""A fake Gemini API: /v1beta/models, :generateContent and :streamGenerateContent?alt=sse.

Run by hand: `python -m tests.fakes.gemini --port 8125 --key AIza-test-local-000000000000`.
"""

from __future__ import annotations

import uuid
from typing import Any

from tests.fakes.server import FakeProvider, RecordedRequest, Reply, StreamReply, serve_forever, sse

MODELS = ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"]


def error(code: int, status: str, message: str, details: list | None = None) -> dict:
    return {
        "error": {
            "code": code,
            "message": message,
            "status": status,
            **({"details": details} if details else {}),
        }
    }


class FakeGemini(FakeProvider):
    name = "gemini"
    prefix = "/v1beta"

    def route(self, request: RecordedRequest) -> Reply | StreamReply:
        if request.headers.get("x-goog-api-key", "") not in self.api_keys or "key=" in request.path:
            return Reply(400, self.failure("invalid_key")[1])
        path = request.path.split("?")[0]
        if request.method == "GET" and path == "/v1beta/models":
            models = [{"name": f"models/{m}", "displayName": m, "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
                       "supportedGenerationMethods": ["generateContent", "countTokens"]} for m in MODELS]  # fmt: skip
            return Reply(200, {"models": models})
        if request.method == "POST" and path.startswith("/v1beta/models/") and ":" in path:
            model, _, method = path.removeprefix("/v1beta/models/").partition(":")
            return self.generate(model, method, request.body)
        return Reply(404, error(404, "NOT_FOUND", "Not found"))

    def generate(self, model: str, method: str, body: Any) -> Reply | StreamReply:
        if model not in MODELS:
            return Reply(404, self.failure("model_not_found", model)[1])
        contents = body.get("contents", [])
        if any(c.get("role") not in ("user", "model") for c in contents):
            return Reply(400, error(400, "INVALID_ARGUMENT", "Please use a valid role: user, model."))
        limit = (body.get("generationConfig") or {}).get("maxOutputTokens")
        pieces, finish = self.words(self.reply_text), "STOP"
        if limit is not None and limit < self.count_tokens(self.reply_text):
            pieces, finish = pieces[: max(1, limit)], "MAX_TOKENS"
        texts = [p["text"] for c in contents for p in c.get("parts", [])]
        texts += [p["text"] for p in (body.get("systemInstruction") or {}).get("parts", [])]
        prompt = sum(self.count_tokens(t) for t in texts) + 2
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": self.count_tokens("".join(pieces)),
                 "totalTokenCount": prompt + self.count_tokens("".join(pieces))}  # fmt: skip
        if method == "streamGenerateContent":
            return StreamReply(self.chunks(model, pieces, finish, usage))
        candidate = {
            "content": {"parts": [{"text": "".join(pieces)}], "role": "model"},
            "finishReason": finish,
            "index": 0,
        }
        return Reply(200, {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model,
                           "responseId": uuid.uuid4().hex[:20]})  # fmt: skip

    def chunks(self, model: str, pieces: list[str], finish: str, usage: dict):
        for number, piece in enumerate(pieces):
            last = number == len(pieces) - 1
            candidate = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
            if last:
                candidate["finishReason"] = finish
            yield sse({"candidates": [candidate], "modelVersion": model,
                       "usageMetadata": usage if last else {"promptTokenCount": usage["promptTokenCount"]}})  # fmt: skip

    def failure(self, name: str, model: str = "gemini-9") -> tuple[int, Any, dict[str, str]]:
        info = "type.googleapis.com/google.rpc."
        failures = {
            "invalid_key": (400, error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                                       [{"@type": f"{info}ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]), {}),
            "forbidden": (403, error(403, "PERMISSION_DENIED", "Permission denied: Consumer 'api_key:AIza...' has been suspended."), {}),
            "rate_limited": (429, error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).",
                                        [{"@type": f"{info}RetryInfo", "retryDelay": "7s"}]), {"retry-after": "7"}),
            "model_not_found": (404, error(404, "NOT_FOUND",
                                           f"models/{model} is not found for API version v1beta, or is not supported for generateContent."), {}),
            "quota_exceeded": (429, error(429, "RESOURCE_EXHAUSTED",
                                          "You exceeded your current quota, please check your plan and billing details.",
                                          [{"@type": f"{info}QuotaFailure", "violations": []}]), {}),
            "server_error": (500, error(500, "INTERNAL", "An internal error has occurred."), {}),
            "overloaded": (503, error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."), {}),
        }  # fmt: skip
        return failures[name]


if __name__ == "__main__":
    serve_forever(FakeGemini)
