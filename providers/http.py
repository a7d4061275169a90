"""The only place that builds httpx clients and reads SSE / NDJSON streams.

Every transport failure leaves here as a ProviderError: timeouts as Timeout, refused or dropped
connections as NetworkError (StreamInterrupted once a stream has begun), non-2xx answers through
the adapter's own `raise_for_status`. Provider bodies are redacted of the configured secrets
before any error can carry them.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from providers.crypto import mask
from providers.errors import NetworkError, StreamInterrupted, Timeout, UnexpectedResponse

USER_AGENT = "LLMHub/0.1"
CONNECT_TIMEOUT = 10.0
# A gateway must not queue requests behind a pool limit; idle connections are kept for reuse.
POOL_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=100, keepalive_expiry=30)

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def shared_client() -> httpx.AsyncClient:
    """One pooled client per event loop, shared by every provider: connections to a provider and
    the TLS context are reused from one request to the next instead of being built each time
    (building a TLS context alone costs milliseconds). Timeouts are set per request."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = _clients[loop] = httpx.AsyncClient(follow_redirects=False, limits=POOL_LIMITS)
    return client


StatusHook = Callable[[int, Mapping[str, str], str], None]


@dataclass(frozen=True)
class SSEEvent:
    event: str
    data: str


class ProviderHTTP:
    """HTTP to one provider: JSON calls, SSE and NDJSON streams, errors mapped to ProviderErrors."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        headers: Mapping[str, str],
        secrets: Sequence[str],
        raise_for_status: StatusHook,
        timeout: float,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._headers = {"user-agent": USER_AGENT, **headers}
        self._secrets = [s for s in secrets if len(s) >= 4]
        self._raise_for_status = raise_for_status
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"<ProviderHTTP {self.provider} {self.base_url}>"

    @property
    def shown_url(self) -> str:
        """The endpoint as an error message may name it: no user:password@, query or fragment."""
        parts = urlsplit(self.base_url)
        return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, mask(secret))
        return text

    async def get_json(self, path: str, *, deadline: float | None = None) -> Any:
        """GET a JSON document. `deadline` bounds the whole exchange, not each read."""
        try:
            async with asyncio.timeout(deadline):
                async with self._send("GET", path, timeout=deadline) as response:
                    return await self._json_body(response)
        except TimeoutError:
            raise Timeout(self.provider, deadline or self.timeout) from None

    async def post_json(self, path: str, body: Mapping[str, Any]) -> Any:
        async with self._send("POST", path, json=body) as response:
            return await self._json_body(response)

    async def post_sse(self, path: str, body: Mapping[str, Any]) -> AsyncIterator[SSEEvent]:
        """Server-sent events from a POST, parsed per the WHATWG rules (event, data, blank line)."""
        async with self._send("POST", path, json=body) as response:
            event, data = "", []
            async for line in self._lines(response):
                if line == "":
                    if data:
                        yield SSEEvent(event or "message", "\n".join(data))
                    event, data = "", []
                elif line.startswith(":"):
                    continue  # a comment, used as a keep-alive
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "event":
                        event = value
                    elif name == "data":
                        data.append(value)
            if data:
                yield SSEEvent(event or "message", "\n".join(data))

    async def post_ndjson(self, path: str, body: Mapping[str, Any]) -> AsyncIterator[Any]:
        """One JSON value per line (Ollama's streaming format)."""
        async with self._send("POST", path, json=body) as response:
            async for line in self._lines(response):
                if line.strip():
                    yield self.parse_json(line, response.status_code)

    def parse_json(self, text: str, status: int = 200) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            raise UnexpectedResponse(
                self.provider, status, self.redact(text), detail="the answer was not valid JSON"
            ) from None

    @asynccontextmanager
    async def _send(
        self, method: str, path: str, *, json: Any = None, timeout: float | None = None
    ) -> AsyncIterator[httpx.Response]:
        """Open a response; leaving the block (normally, by error or by cancel) closes it."""
        seconds = timeout or self.timeout
        limits = httpx.Timeout(seconds, connect=min(CONNECT_TIMEOUT, seconds))
        client = shared_client()
        try:
            request = client.build_request(
                method, self.base_url + path, json=json, headers=self._headers, timeout=limits
            )
            response = await client.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    await self._raise_for(response)
                yield response
            finally:
                # An unfinished body closes its connection: the provider sees the cancel at once.
                await response.aclose()
        except httpx.TimeoutException:
            raise Timeout(self.provider, seconds) from None
        except httpx.TransportError as error:
            raise NetworkError(self.provider, endpoint=self.shown_url, refused=_refused(error)) from None

    async def _raise_for(self, response: httpx.Response) -> None:
        body = self.redact((await response.aread()).decode("utf-8", errors="replace"))
        self._raise_for_status(response.status_code, response.headers, body)
        raise UnexpectedResponse(self.provider, response.status_code, body)

    async def _json_body(self, response: httpx.Response) -> Any:
        text = (await response.aread()).decode("utf-8", errors="replace")
        return self.parse_json(text, response.status_code)

    async def _lines(self, response: httpx.Response) -> AsyncIterator[str]:
        try:
            async for line in response.aiter_lines():
                yield line
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # The server closed the connection before finishing the body.
            raise StreamInterrupted(self.provider) from None


def _refused(error: BaseException) -> bool:
    """Whether a transport error was "connection refused" (nothing listens there), anywhere in
    its chain: httpx wraps the OSError in its own errors."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def parse_retry_after(value: str) -> float | None:
    """A `retry-after` value in seconds: a number of seconds, or an HTTP date. None if neither."""
    value = value.strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = _http_date(value)
    return None if when is None else max(0.0, (when - datetime.now(UTC)).total_seconds())


def _http_date(value: str) -> datetime | None:
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
