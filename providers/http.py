"""The only place that builds httpx transports and requests and reads SSE / NDJSON streams.

Every transport failure leaves here as a ProviderError: timeouts as Timeout, refused or dropped
connections as NetworkError (StreamInterrupted once a stream has begun), non-2xx answers through
the adapter's own `raise_for_status`, answers that are not what was asked for (a web page, a body
that cannot be decoded, a line or a body over its limit) as UnexpectedResponse. Bodies are read in
pieces up to a limit, never whole, and redacted of the configured secrets before any error can
carry them.
"""

from __future__ import annotations

import asyncio
import json
import re
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from providers import network
from providers.crypto import mask
from providers.errors import EndpointRefused, NetworkError, StreamInterrupted, Timeout, UnexpectedResponse
from providers.transport import AiohttpTransport

USER_AGENT = "LLMHub/0.1"
# Sent with every request, as httpx's client sends them; the encodings are those httpx decodes.
BASE_HEADERS = {"Accept": "*/*", "Accept-Encoding": "gzip, deflate", "Connection": "keep-alive"}
CONNECT_TIMEOUT = 10.0
# The paths whose URL and headers a provider keeps prepared (one a model, at most, for Gemini's).
MAX_PREPARED_PATHS = 256
# A gateway must not queue requests behind a pool limit; idle connections are kept for reuse.
POOL_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=100, keepalive_expiry=30)
# One line of a stream, an error body, a JSON answer: the most read before the answer is refused
# (a 10 MB line once stalled every response of the server for half a minute).
MAX_LINE_BYTES = 1024 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024
MAX_JSON_BYTES = 32 * 1024 * 1024
# After a stream's last event, the most waited and read for the rest of its body (the chunked
# body's end, a blank line) so that the connection can be reused; a provider that keeps the body
# open, or sends more, costs at most this and its connection is closed.
DRAIN_SECONDS = 0.25
DRAIN_BYTES = 4096
# Made once: json.dumps with options makes a JSONEncoder for every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_LINE_END = re.compile("\r\n|\r|\n")
# orjson parses a provider's JSON in about a third of json's instructions (~11,000 fewer for an
# event of a stream, issue 16), and gives the same values, but for integers beyond 64 bits (a
# float where json gives the int): a text with 19 digits in a row is left to json.
_LONG_DIGITS = b"9" * 19
_DIGITS_AS_9 = bytes(57 if 48 <= byte <= 57 else 32 for byte in range(256))

_transports: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, AiohttpTransport]] = (
    weakref.WeakKeyDictionary()
)


def shared_transport(private_network: bool = False) -> AiohttpTransport:
    """One connection pool per event loop, shared by every provider: connections to a provider and
    the TLS context are reused from one request to the next instead of being built each time
    (building a TLS context alone costs milliseconds).

    Requests go to the transport itself, not through an httpx client: the hub follows no redirects,
    sends no auth flow, and keeps no cookies (a cookie one team's provider sets must never be sent
    on another team's request), which is all a client would add, at a cost on every request.

    Providers that may reach the hub's own network get a pool of their own: a pooled connection
    to a private address must never be handed to a provider that may not open one."""
    loop = asyncio.get_running_loop()
    transports = _transports.setdefault(loop, {})
    transport = transports.get(private_network)
    if transport is None:
        transport = transports[private_network] = network.guarded_transport(private_network, POOL_LIMITS)
    return transport


StatusHook = Callable[[int, Mapping[str, str], str], None]


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and one is made for
# every event of a stream.
@dataclass(slots=True)
class SSEEvent:
    event: str
    data: str
    last: bool = False  # the event post_sse's `last` named: nothing follows it


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
        private_network: bool = False,
    ) -> None:
        self.provider = provider
        self.private_network = private_network
        self.base_url = base_url.rstrip("/")
        # Prepared once: httpx would parse the URL and merge the headers again on every request.
        self._headers = httpx.Headers(BASE_HEADERS)
        self._headers.update({"user-agent": USER_AGENT, **headers})
        self._json_type = "content-type" not in self._headers  # a provider's headers may set its own
        self._targets: dict[str, tuple[httpx.URL, httpx.Headers]] = {}
        self._secrets = [s for s in secrets if len(s) >= 4]
        self._raise_for_status = raise_for_status
        self.timeout = timeout
        self._limits = _limits(timeout)

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

    async def post_sse(
        self, path: str, body: Mapping[str, Any], last: Callable[[SSEEvent], bool] | None = None
    ) -> AsyncIterator[SSEEvent]:
        """Server-sent events from a POST, parsed per the WHATWG rules (event, data, blank line).

        `last` names the protocol's last event (OpenAI's `[DONE]`, say). When it arrives the rest
        of the body is read first, within DRAIN_SECONDS and DRAIN_BYTES, and the response closed,
        and only then is the event yielded: a body read to its end gives its connection back to the
        pool, where the next request finds it, instead of a new TCP and TLS handshake per request
        (its caller stops reading at that event, and a body left unfinished closes its connection).
        Whatever comes after the last event is ignored."""
        final: SSEEvent | None = None
        async with self._send("POST", path, json=body) as response:
            await self._refuse_a_page(response)
            event, data, events, stray = "", [], 0, []
            batches = self._lines(response)
            async for lines in batches:
                for line in lines:
                    if line == "":
                        if data:
                            events += 1
                            parsed = SSEEvent(event or "message", "\n".join(data))
                            if last is not None and last(parsed):
                                final, parsed.last = parsed, True
                                break
                            yield parsed
                        event, data = "", []
                    elif line.startswith("data: "):
                        data.append(line[6:])  # nearly every line: the general rule below is slower
                    elif line.startswith(":"):
                        continue  # a comment, used as a keep-alive
                    else:
                        name, _, value = line.partition(":")
                        value = value.removeprefix(" ")
                        if name == "event":
                            event = value
                        elif name == "data":
                            data.append(value)
                        elif name not in ("id", "retry") and len(stray) < 5:
                            stray.append(line[:200])
                if final is not None:
                    await self._drain(batches)
                    break
            if final is None and data:
                events += 1
                yield SSEEvent(event or "message", "\n".join(data))
            if not events and stray:
                # Text that is not SSE at all (a proxy's notice, say): not a stream that broke off.
                raise UnexpectedResponse(
                    self.provider,
                    response.status_code,
                    self.redact("\n".join(stray)),
                    problem="it did not answer with an event stream",
                )
        if final is not None:
            yield final

    async def post_ndjson(
        self, path: str, body: Mapping[str, Any], last: Callable[[Any], bool] | None = None
    ) -> AsyncIterator[Any]:
        """One JSON value per line (Ollama's streaming format). `last` names the last value, as
        for `post_sse`: the rest of the body is read and the connection given back before it is
        yielded."""
        final: Any = None
        async with self._send("POST", path, json=body) as response:
            await self._refuse_a_page(response)
            batches = self._lines(response)
            async for lines in batches:
                for line in lines:
                    if line.strip():
                        value = self.parse_json(line, response.status_code)
                        if last is not None and last(value):
                            final = value
                            break
                        yield value
                if final is not None:
                    await self._drain(batches)
                    break
        if final is not None:
            yield final

    async def _drain(self, batches: AsyncGenerator[list[str], None]) -> None:
        """Read what is left of a body after its last event, to its end if that comes within
        DRAIN_SECONDS and DRAIN_BYTES. Whatever it holds is ignored, and so is a failure to read
        it: the answer is complete, and a body not read to its end only costs its connection."""
        read = 0
        try:
            async with asyncio.timeout(DRAIN_SECONDS):
                async for lines in batches:
                    read += sum(len(line) + 1 for line in lines)
                    if read > DRAIN_BYTES:
                        return
        except (TimeoutError, StreamInterrupted, UnexpectedResponse, httpx.HTTPError):
            return  # the connection is closed with the response, as for any unfinished body
        finally:
            await batches.aclose()

    def parse_json(self, text: str, status: int = 200) -> Any:
        # find(), not `in`: bytes' `in` first tries its operand as an int, and formats a TypeError.
        if text.encode(errors="surrogatepass").translate(_DIGITS_AS_9).find(_LONG_DIGITS) < 0:
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:
                pass  # json.loads below: it takes NaN and Infinity, and its error is the one raised
        try:
            return json.loads(text)
        except ValueError:
            raise UnexpectedResponse(
                self.provider, status, self.redact(text), problem="its answer was not valid JSON"
            ) from None

    @asynccontextmanager
    async def _send(
        self, method: str, path: str, *, json: Any = None, timeout: float | None = None
    ) -> AsyncIterator[httpx.Response]:
        """Open a response; leaving the block (normally, by error or by cancel) closes it."""
        seconds = timeout or self.timeout
        limits = self._limits if seconds == self.timeout else _limits(seconds)
        transport = shared_transport(self.private_network)
        encoding = "none"
        try:
            request = self._request(method, path, json, limits)
            response = await transport.handle_async_request(request)
            response.request = request
            # get_list(): get() of a header the answer lacks (most) makes and catches a KeyError.
            encoding = ", ".join(response.headers.get_list("content-encoding")) or encoding
            try:
                if response.status_code >= 400:
                    await self._raise_for(response)
                yield response
            finally:
                # An unfinished body closes its connection: the provider sees the cancel at once.
                await response.aclose()
        except network.AddressRefused as refused:
            raise EndpointRefused(self.provider, refused.reason) from None
        except httpx.TimeoutException:
            raise Timeout(self.provider, seconds) from None
        except httpx.DecodingError:
            raise UnexpectedResponse(
                self.provider, 200, problem=f"its answer could not be decoded (content-encoding {encoding})"
            ) from None
        except httpx.TransportError as error:
            raise NetworkError(self.provider, endpoint=self.shown_url, refused=_refused(error)) from None

    def _request(self, method: str, path: str, body: Any, limits: dict[str, Any]) -> httpx.Request:
        """The request httpx's client sends for `json=`, the same bytes (compact UTF-8 JSON, no
        NaN; Host first, the body's length and type last), from the URL and headers of its path
        prepared once: httpx's own preparation parses the URL and rebuilds the headers each time."""
        url, headers = self._target(path)
        if body is None:
            return httpx.Request(
                method, url, headers=headers, stream=httpx.ByteStream(b""), extensions=limits
            )
        content = _ENCODER.encode(body).encode()
        request = httpx.Request(
            method, url, headers=headers, stream=httpx.ByteStream(content), extensions=limits
        )
        # The request's own copy of the headers, with the encoding found once for the prepared ones.
        request.headers.encoding = headers.encoding
        request.headers["Content-Length"] = str(len(content))
        if self._json_type:
            request.headers["Content-Type"] = "application/json"
        return request

    def _target(self, path: str) -> tuple[httpx.URL, httpx.Headers]:
        target = self._targets.get(path)
        if target is None:
            url, headers = httpx.URL(self.base_url + path), self._headers
            if "Host" not in headers and url.host:
                headers = httpx.Headers([(b"Host", url.netloc), *headers.raw])
            target = (url, headers)
            if len(self._targets) < MAX_PREPARED_PATHS:
                self._targets[path] = target
        return target

    async def _raise_for(self, response: httpx.Response) -> None:
        raw, whole = await self._read(response, MAX_ERROR_BODY_BYTES)
        body = self.redact(raw.decode("utf-8", errors="replace"))
        if not whole:
            raise UnexpectedResponse(
                self.provider,
                response.status_code,
                body,
                problem="its error body was over 64 KiB; it was not read further",
            )
        self._raise_for_status(response.status_code, response.headers, body)
        raise UnexpectedResponse(self.provider, response.status_code, body)

    async def _refuse_a_page(self, response: httpx.Response) -> None:
        """A web page where a stream was asked for: a login wall or a proxy's error page, sent as 200."""
        kind = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if kind in ("text/html", "application/xhtml+xml"):
            raw, _ = await self._read(response, 2000)
            raise UnexpectedResponse(
                self.provider,
                response.status_code,
                self.redact(raw.decode(errors="replace")),
                problem=f"it answered with a web page ({kind}), not a stream",
            )

    async def _read(self, response: httpx.Response, limit: int) -> tuple[bytes, bool]:
        """At most `limit` bytes of the body, and whether that was all of it."""
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                return bytes(body[:limit]), False
        return bytes(body), True

    async def _json_body(self, response: httpx.Response) -> Any:
        raw, whole = await self._read(response, MAX_JSON_BYTES)
        if not whole:
            raise UnexpectedResponse(
                self.provider,
                response.status_code,
                problem="its answer was over 32 MiB; it was not read further",
            )
        return self.parse_json(raw.decode("utf-8", errors="replace"), response.status_code)

    async def _lines(self, response: httpx.Response) -> AsyncGenerator[list[str], None]:
        """The body's lines (ended by CR, LF or CRLF, as SSE allows), each at most MAX_LINE_BYTES,
        a list of them for each piece of the body read: a stream's events come many to a read, and
        a step of an async generator for each line cost more than the line's own parsing."""
        pending, after_cr = bytearray(), False
        try:
            # A body sent as it is (no content-encoding) is read as the transport gives it, without
            # httpx's decoding layer or the generator of Response.aiter_raw (a step for each piece).
            raw = "content-encoding" not in response.headers
            async for chunk in response.stream if raw else response.aiter_bytes():  # type: ignore[union-attr]
                if after_cr and chunk.startswith(b"\n"):
                    chunk = chunk[1:]  # the LF of a CRLF split between two reads
                if chunk.endswith(b"\n"):  # nearly every read: it ends at the end of a line
                    after_cr, end = False, len(chunk)
                else:
                    after_cr = chunk.endswith(b"\r")
                    end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r")) + 1
                if end:
                    # Decoded at once: no line end is part of a UTF-8 sequence, so each line
                    # decodes as it would alone.
                    whole = pending + chunk[:end] if pending else chunk[:end]
                    try:
                        text = whole.decode()
                    except UnicodeDecodeError:  # replaced; the strict decoder is 3 times faster
                        text = whole.decode("utf-8", errors="replace")
                    lines = _LINE_END.split(text) if "\r" in text else text.split("\n")
                    lines.pop()  # the empty rest after the last line's end
                    yield lines
                    if pending or end < len(chunk):
                        pending = bytearray(chunk[end:])
                else:
                    pending += chunk
                if len(pending) > MAX_LINE_BYTES:
                    raise UnexpectedResponse(
                        self.provider,
                        response.status_code,
                        problem="a line of its stream was over 1 MiB; it was not read further",
                    )
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # The server closed the connection before finishing the body.
            raise StreamInterrupted(self.provider) from None
        await response.aclose()  # the body read to its end: its connection back to the pool at once
        if pending:
            yield [pending.decode("utf-8", errors="replace")]


def _limits(seconds: float) -> dict[str, Any]:
    """A request's timeouts, as httpx's transport reads them."""
    return {"timeout": httpx.Timeout(seconds, connect=min(CONNECT_TIMEOUT, seconds)).as_dict()}


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
