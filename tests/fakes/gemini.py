"""A fake Gemini API: /v1beta/models, :generateContent and :streamGenerateContent?alt=sse.

Run by hand: `python -m tests.fakes.gemini --port 8125 --key AIza-test-local-000000000000`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.fakes.openai import fake_vector
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

MODELS = ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"]
EMBEDDING_DIMENSIONS = {"gemini-embedding-001": 3072, "text-embedding-004": 768}


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
            models = [
                {
                    "name": f"models/{m}",
                    "displayName": m,
                    "inputTokenLimit": 1048576,
                    "outputTokenLimit": 65536,
                    "supportedGenerationMethods": ["generateContent", "countTokens"],
                }
                for m in MODELS
            ]
            return Reply(200, {"models": models})
        if request.method == "POST" and path.startswith("/v1beta/models/") and ":" in path:
            model, _, method = path.removeprefix("/v1beta/models/").partition(":")
            if method == "batchEmbedContents":
                return self.batch_embed(model, request.body)
            return self.generate(model, method, request.body)
        return Reply(404, error(404, "NOT_FOUND", "Not found"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cached_tokens = 0  # prompt tokens the next answers report as cached content
        self.thoughts_tokens = 0  # thinking tokens the next answers report

    def batch_embed(self, model: str, body: Any) -> Reply:
        """batchEmbedContents as Gemini answers it: {"embeddings": [{"values": [...]}]} in order, no
        token count; each request must name the model of the URL; at most 100 requests a call."""
        if model not in EMBEDDING_DIMENSIONS:
            return Reply(404, self.failure("model_not_found", model)[1])
        requests = body.get("requests") or []
        if len(requests) > 100:
            message = "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch"
            return Reply(400, error(400, "INVALID_ARGUMENT", message))
        embeddings = []
        for index, one in enumerate(requests):
            if one.get("model") != f"models/{model}":
                message = f"Model name in requests[{index}] does not match the model in the URL."
                return Reply(400, error(400, "INVALID_ARGUMENT", message))
            text = "".join(part.get("text", "") for part in one["content"]["parts"])
            size = one.get("outputDimensionality") or EMBEDDING_DIMENSIONS[model]
            embeddings.append({"values": fake_vector(text, size)})
        self.embedded.append([one["content"]["parts"][0]["text"] for one in requests])
        return Reply(200, {"embeddings": embeddings})

    def generate(self, model: str, method: str, body: Any) -> Reply | StreamReply:
        if model not in MODELS:
            return Reply(404, self.failure("model_not_found", model)[1])
        contents = body.get("contents", [])
        if any(c.get("role") not in ("user", "model") for c in contents):
            return Reply(400, error(400, "INVALID_ARGUMENT", "Please use a valid role: user, model."))
        config = body.get("generationConfig") or {}
        limit = config.get("maxOutputTokens")
        called = {
            p["functionCall"]["name"] for c in contents for p in c.get("parts", []) if "functionCall" in p
        }
        answered = {
            p["functionResponse"]["name"]
            for c in contents
            for p in c.get("parts", [])
            if "functionResponse" in p
        }
        if answered - called:
            message = f"Function response for {sorted(answered - called)[0]!r} has no matching function call."
            return Reply(400, error(400, "INVALID_ARGUMENT", message))
        decided = self.decide(body)
        decided.text = self.stopped(decided.text, config.get("stopSequences"))[0]  # still "STOP"
        pieces, finish = self.words(decided.text), "STOP"
        if limit is not None and limit < self.count_tokens(decided.text):
            pieces, finish = pieces[: max(1, limit)], "MAX_TOKENS"
        texts = [
            json.dumps(p) if "text" not in p else p["text"] for c in contents for p in c.get("parts", [])
        ]
        texts += [p["text"] for p in (body.get("systemInstruction") or {}).get("parts", [])]
        texts += [json.dumps(body["tools"])] if body.get("tools") else []
        prompt = sum(self.count_tokens(t) for t in texts) + 2
        generated = self.count_tokens(
            "".join(pieces) + (json.dumps(decided.arguments) if decided.calls else "")
        )
        candidates = int(config.get("candidateCount") or 1)
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": generated * candidates,
            "totalTokenCount": prompt + (generated + self.thoughts_tokens) * candidates,
        }
        if self.cached_tokens:
            usage["cachedContentTokenCount"] = min(self.cached_tokens, prompt)
        if self.thoughts_tokens:
            usage["thoughtsTokenCount"] = self.thoughts_tokens * candidates
        call = {"functionCall": {"name": decided.tool, "args": decided.arguments}} if decided.calls else None
        if method == "streamGenerateContent":
            return StreamReply(self.chunks(model, pieces, finish, usage, call, candidates))
        parts = ([{"text": "".join(pieces)}] if pieces else []) + ([call] if call else [])
        listed = [
            {"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": n}
            for n in range(candidates)
        ]
        return Reply(
            200,
            {
                "candidates": listed,
                "usageMetadata": usage,
                "modelVersion": model,
                "responseId": uuid.uuid4().hex[:20],
            },
        )

    def decide(self, body: dict) -> Plan:
        contents = body.get("contents", [])
        last = contents[-1]["parts"] if contents else []
        results = [p["functionResponse"] for p in last if "functionResponse" in p]
        declarations = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations", [])]
        tools = [(d["name"], d.get("parametersJsonSchema") or d.get("parameters")) for d in declarations]
        calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        forced = (
            ""
            if calling.get("mode") == "NONE"
            else next(iter(calling.get("allowedFunctionNames") or []), None)
        )
        config = body.get("generationConfig") or {}
        json_mode = config.get("responseMimeType") == "application/json"
        images = sum(1 for c in contents for p in c.get("parts", []) if "inlineData" in p)
        result = json.dumps(results[-1]["response"]) if results else None
        return plan(self, tools, forced, result, config.get("responseJsonSchema"), json_mode, images)

    def chunks(
        self,
        model: str,
        pieces: list[str],
        finish: str,
        usage: dict,
        call: dict | None = None,
        candidates: int = 1,
    ):
        steps = [[{"text": piece}] for piece in pieces] + ([[call]] if call else [])
        for number, parts in enumerate(steps):
            last = number == len(steps) - 1
            listed = []
            for index in range(candidates):
                candidate = {"content": {"parts": parts, "role": "model"}, "index": index}
                if last:
                    candidate["finishReason"] = finish
                listed.append(candidate)
            yield sse(
                {
                    "candidates": listed,
                    "modelVersion": model,
                    "usageMetadata": usage if last else {"promptTokenCount": usage["promptTokenCount"]},
                }
            )

    def failure(self, name: str, model: str = "gemini-9") -> tuple[int, Any, dict[str, str]]:
        info = "type.googleapis.com/google.rpc."
        failures = {
            "invalid_key": (
                400,
                error(
                    400,
                    "INVALID_ARGUMENT",
                    "API key not valid. Please pass a valid API key.",
                    [{"@type": f"{info}ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}],
                ),
                {},
            ),
            "forbidden": (
                403,
                error(
                    403,
                    "PERMISSION_DENIED",
                    "Permission denied: Consumer 'api_key:AIza...' has been suspended.",
                ),
                {},
            ),
            "rate_limited": (
                429,
                error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "Resource has been exhausted (e.g. check quota).",
                    [{"@type": f"{info}RetryInfo", "retryDelay": "7s"}],
                ),
                {"retry-after": "7"},
            ),
            "model_not_found": (
                404,
                error(
                    404,
                    "NOT_FOUND",
                    f"models/{model} is not found for API version v1beta, or is not supported for generateContent.",
                ),
                {},
            ),
            "quota_exceeded": (
                429,
                error(
                    429,
                    "RESOURCE_EXHAUSTED",
                    "You exceeded your current quota, please check your plan and billing details.",
                    [{"@type": f"{info}QuotaFailure", "violations": []}],
                ),
                {},
            ),
            "server_error": (500, error(500, "INTERNAL", "An internal error has occurred."), {}),
            "overloaded": (
                503,
                error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
                {},
            ),
        }
        return failures[name]


if __name__ == "__main__":
    serve_forever(FakeGemini)
