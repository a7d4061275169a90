"""Nothing under /v1/ answers HTML: an ASGI wrapper around the whole app for the API's paths.

Django answers some failures with its own HTML pages before or around our views (a disallowed host,
a CSRF refusal, a body too large, an exception anywhere: its 500 page). Programs reading the API
expect OpenAI's error shape, so any response under /v1/ that is neither JSON nor an event stream is
replaced by one, keeping its status; an exception that escapes is logged and answered as JSON, or,
once a stream has begun, as an SSE error event that ends it.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

logger = logging.getLogger(__name__)
PREFIX = "/v1/"
ANTHROPIC_PATHS = ("/v1/messages",)
PASSED = (b"application/json", b"text/event-stream")


def error_json(status: int, message: str, code: str, path: str = "") -> bytes:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if path.startswith(ANTHROPIC_PATHS):  # Anthropic's SDKs read their own error shape
        kind = "invalid_request_error" if status < 500 else "api_error"
        return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()


class JsonErrors:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        response = _Response(send, scope["path"], scope.get("method") == "OPTIONS")
        try:
            await self.app(scope, receive, response.send)
        except Exception:
            logger.exception("Unhandled error answering %s", scope["path"])
            await response.fail()


class _Response:
    """Passes JSON and event streams through; swaps anything else for a JSON error."""

    def __init__(self, send: Any, path: str, preflight: bool = False) -> None:
        self._send, self.path = send, path
        self.preflight = preflight  # a CORS preflight's empty answer (django-cors-headers) passes
        self.status: int | None = None  # set once a response has started
        self.location = ""  # where a redirect pointed
        self.replacing = False
        self.streaming = False
        self.done = False

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            headers = message.get("headers") or []
            kind = _first(headers, b"content-type").lower()
            passed = kind.startswith(PASSED) or (self.preflight and self.status < 300)
            self.replacing = not passed
            self.location = _first(headers, b"location").decode()
            self.streaming = kind.startswith(b"text/event-stream")
            if self.replacing:
                return
        elif message["type"] == "http.response.body":
            self.done = not message.get("more_body", False)
            if self.replacing:
                if self.done:
                    await self._json(self.status or 500)
                return
        await self._send(message)

    async def fail(self) -> None:
        if self.status is None or self.replacing:
            await self._json(500)
        elif self.streaming and not self.done:
            body = error_json(
                500, "The hub failed while answering; the error is logged.", "internal_error", self.path
            )
            named = b"event: error\n" if self.path.startswith(ANTHROPIC_PATHS) else b""
            await self._send({"type": "http.response.body", "body": named + b"data: " + body + b"\n\n"})
        elif not self.done:
            await self._send({"type": "http.response.body", "body": b""})

    async def _json(self, status: int) -> None:
        if 300 <= status < 400 and self.location:
            # A redirect (https only, a missing slash): an API client would re-send a POST as a GET
            # or not follow it at all, so the address to use is said instead.
            status, code = 400, "wrong_address"
            message = f"The hub does not redirect API requests: send this request to {self.location}."
        elif status < 400 or status >= 500:
            status = max(status, 500)  # a page where JSON was due is the hub's failure
            message, code = "The hub failed while answering; the error is logged.", "internal_error"
        elif status == 404:
            message, code = f"Unknown API path {self.path}.", "unknown_url"
        else:
            phrase = next((known.phrase for known in HTTPStatus if known.value == status), "refused")
            message, code = f"The request was refused: {phrase}.", "invalid_request"
        body = error_json(status, message, code, self.path)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body})
        self.done = True


def _first(headers: list, wanted: bytes) -> bytes:
    """The first value of the header named `wanted` (lower case), or b"". A loop: next() over a
    generator that finds it leaves the generator to be closed, by a GeneratorExit made and caught."""
    for name, value in headers:
        if name.lower() == wanted:
            return value
    return b""
