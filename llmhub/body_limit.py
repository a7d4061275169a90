"""A request body over the limit is refused before it is read whole.

Django reads the whole body of an ASGI request into a temporary file before any view runs, and
checks its size only when a content-length was sent: a chunked upload had no bound. This wraps the
HTTP app, reads at most LLMHUB_API_MAX_BODY_BYTES, and hands Django what it read.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from llmhub import conf

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class BodyLimitMiddleware:
    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = conf.setting("LLMHUB_API_MAX_BODY_BYTES")
        if _declared_length(scope) > limit:
            return await _refuse(scope, send, limit)
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client left: Django sees the disconnect as it would have
            size += len(message.get("body", b""))
            if size > limit:
                return await _refuse(scope, send, limit)
            if not message.get("more_body", False):
                break

        async def replay() -> dict[str, Any]:
            # What was read, then the live channel (Django listens on it for a disconnect).
            return messages.pop(0) if messages else await receive()

        return await self.app(scope, replay, send)


def _declared_length(scope: dict[str, Any]) -> int:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _refuse(scope: dict[str, Any], send: Send, limit: int) -> None:
    message = f"The request body is over the limit of {limit:,} bytes."
    if scope["path"].startswith("/v1/"):  # the API answers in OpenAI's error shape
        status, content_type = 400, b"application/json"
        error = {
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": "request_too_large",
        }
        body = json.dumps({"error": error}).encode()
    else:
        status, content_type, body = 413, b"text/plain; charset=utf-8", message.encode()
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
