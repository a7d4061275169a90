"""A fake Azure OpenAI resource: deployment URLs, the `api-key` header, a required api-version.

Run by hand: `python -m tests.fakes.azure --port 8127 --key azure-test-key-0000000000000000`
(deployments: gpt4o-prod=gpt-4o, mini=gpt-4o-mini).
"""

from __future__ import annotations

from typing import Any

from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import RecordedRequest, Reply, StreamReply, serve_forever


def error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


class FakeAzure(FakeOpenAI):
    name = "azure"
    prefix = ""
    auth_header = "api-key"
    auth_scheme = ""
    deployments = {"gpt4o-prod": "gpt-4o", "mini": "gpt-4o-mini", "reasoner": "o3-mini"}

    def route(self, request: RecordedRequest) -> Reply | StreamReply:
        if request.headers.get("api-key", "") not in self.api_keys:
            return Reply(401, self.failure("invalid_key")[1])
        path, _, query = request.path.partition("?")
        if "api-version=" not in query:
            return Reply(404, error("404", "Resource not found"))
        if request.method == "GET" and path == "/openai/models":
            return Reply(
                200, {"data": [{"id": m, "object": "model"} for m in sorted(set(self.deployments.values()))]}
            )
        prefix, _, rest = path.partition("/openai/deployments/")
        deployment, _, tail = rest.partition("/")
        if request.method == "POST" and tail == "chat/completions" and not prefix:
            if deployment not in self.deployments:
                return Reply(404, self.failure("model_not_found")[1])
            body = {**(request.body or {}), "model": self.deployments[deployment]}
            return self.chat(body)
        if request.method == "POST" and tail == "embeddings" and not prefix:
            if deployment not in self.deployments:
                return Reply(404, self.failure("model_not_found")[1])
            return self.embeddings({**(request.body or {}), "model": self.deployments[deployment]})
        return Reply(404, error("404", "Resource not found"))

    def failure(self, name: str, key: str = "", model: str = "") -> tuple[int, Any, dict[str, str]]:
        failures = {
            "invalid_key": (
                401,
                error(
                    "401",
                    "Access denied due to invalid subscription key or wrong API endpoint. "
                    "Make sure to provide a valid key for an active subscription and use a "
                    "correct regional API endpoint for your resource.",
                ),
                {},
            ),
            "forbidden": (
                403,
                error("PermissionDenied", "Principal does not have access to API/Operation."),
                {},
            ),
            "rate_limited": (
                429,
                error(
                    "429",
                    "Requests to the ChatCompletions_Create Operation under Azure OpenAI API "
                    "have exceeded token rate limit. Please retry after 7 seconds.",
                ),
                {"retry-after": "7", "retry-after-ms": "7000"},
            ),
            "model_not_found": (
                404,
                error(
                    "DeploymentNotFound",
                    "The API deployment for this resource does not exist. "
                    "If you created the deployment within the last 5 minutes, "
                    "please wait a moment and try again.",
                ),
                {},
            ),
            "quota_exceeded": (
                429,
                {
                    "error": {
                        "code": "insufficient_quota",
                        "message": "You exceeded your current "
                        "quota, please check your plan and billing details.",
                        "type": "insufficient_quota",
                    }
                },
                {},
            ),
            "server_error": (
                500,
                error("InternalServerError", "The server had an error while processing your request."),
                {},
            ),
            "overloaded": (
                503,
                error("ServiceUnavailable", "The service is temporarily unable to process your request."),
                {},
            ),
        }
        return failures[name]


if __name__ == "__main__":
    serve_forever(FakeAzure)
