"""httpx's transport interface on aiohttp: the HTTP/1.1 of every provider call.

The hub builds httpx requests and reads httpx responses (providers/http.py); what goes over the
wire is aiohttp's, whose HTTP parser is C (llhttp) where httpcore's h11 is pure Python: h11 and
httpcore cost ~1.5 M instructions of a request's ~9.6 M, plus ~64,000 for each chunk of a stream
(issue 16, bench/instructions.py). httpx-aiohttp (by an httpx maintainer) does the same, but maps a
server that closes mid-body to a connect timeout and has no hook for the hub's address policy; the
conversion here is small enough to keep it exact.

Failures are httpx's, as httpcore raised them: a connect that fails or a TLS handshake refused is
ConnectError (the OSError, ConnectionRefusedError say, in its chain), a connect or handshake that
takes too long ConnectTimeout, a read that waits too long ReadTimeout, a server that closes before
its answer's end RemoteProtocolError, a connection broken under a read or write ReadError.
AddressRefused (providers/network.py) passes through as it is. aiohttp has no write timeout: the
transport keeps one for bodies large enough to wait on the socket (WriteTimeout).
"""

from __future__ import annotations

import asyncio
import functools
import select
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
from aiohttp.client_proto import ResponseHandler

# A body up to this size goes into the socket's buffer at once, whole; a larger one is written in
# pieces of this size, each within the write timeout (see _pieces).
WRITE_PIECE = 64 * 1024


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through one aiohttp session: its connector's pool of connections.
    The session keeps no cookies and follows no redirects (providers/network.py builds it)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        # aiohttp logs an error for a session still open when it is collected, which a pool kept for
        # its loop's life would be at the end of every asyncio.run (a management command, asgiref's
        # async_to_sync, a test). asyncio.run cancels the tasks left at its end: this one then
        # closes the session, and with it the pool's connections.
        self._closer = asyncio.get_running_loop().create_task(self._close_at_the_end())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {})
        content = request.read()  # the hub's request bodies are in memory (providers/http.py)
        try:
            if len(content) > WRITE_PIECE:
                async with asyncio.timeout(None) as deadline:
                    pieces = _pieces(content, deadline, timeout.get("write"))
                    response = await self._send(request, pieces, timeout)
            else:
                response = await self._send(request, content or None, timeout)
        except aiohttp.ClientError as error:
            raise _mapped(error) from error
        except TimeoutError as error:  # the deadline of _pieces (aiohttp's own are ClientErrors)
            raise httpx.WriteTimeout("the provider did not read the request's body") from error
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def _send(
        self, request: httpx.Request, data: Any, timeout: dict[str, Any]
    ) -> aiohttp.ClientResponse:
        return await self.session.request(
            request.method,
            str(request.url),
            headers=request.headers.multi_items(),
            data=data,
            allow_redirects=False,
            # Bodies are decoded by httpx (Response.aiter_bytes), as they were under httpcore.
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(
                connect=_sum(timeout.get("pool"), timeout.get("connect")),
                sock_connect=timeout.get("connect"),
                sock_read=timeout.get("read"),
            ),
        )

    async def aclose(self) -> None:
        await self.session.close()

    async def _close_at_the_end(self) -> None:
        try:
            await asyncio.get_running_loop().create_future()  # never done: cancelled at the loop's end
        finally:
            await self.session.close()


class PoolConnector(aiohttp.TCPConnector):
    """aiohttp's pool of connections, kept as httpcore kept it: at most `max_keepalive_connections`
    idle ones, and an idle one the server closed (or wrote on) is not used again. aiohttp has no
    setting for the first, and for the second only looks at what the event loop has already read."""

    def __init__(self, limits: httpx.Limits, ssl_context: ssl.SSLContext) -> None:
        super().__init__(
            ssl=ssl_context,
            limit=limits.max_connections or 0,  # 0: no limit
            limit_per_host=0,
            keepalive_timeout=limits.keepalive_expiry,
            # Addresses are tried one after another, as before: no second attempt racing the first.
            happy_eyeballs_delay=None,
        )
        self.max_idle = limits.max_keepalive_connections
        self._factory = functools.partial(_Protocol, loop=self._loop)

    async def _get(self, key: Any, traces: Any) -> Any:
        while (connection := await super()._get(key, traces)) is not None:
            transport, protocol = connection.transport, connection.protocol
            if (
                transport is not None
                and not protocol.should_close  # bytes nobody asked for, read by the loop already
                and not _readable(transport.get_extra_info("socket"))
            ):
                return connection
            # Closed by the server since the loop last looked, or sent something nobody asked for.
            connection.close()
        return None

    def _release(self, key: Any, protocol: Any, *, should_close: bool = False) -> None:
        if self.max_idle is not None and sum(map(len, self._conns.values())) >= self.max_idle:
            should_close = True
        super()._release(key, protocol, should_close=should_close)


class _Protocol(ResponseHandler):
    """aiohttp's connection protocol, told to resume reading only when it was paused: its body
    reader asks after every piece of a body it hands out, paused or not, and each ask runs the
    parser on nothing (~5,000 instructions a piece, a dozen pieces a streamed answer; issue 16)."""

    __slots__ = ()

    def resume_reading(self, resume_parser: bool = True) -> None:
        if self._reading_paused or self._buffer_paused:
            super().resume_reading(resume_parser)


def _readable(sock: Any) -> bool:
    """Whether a read of an idle connection's socket would not wait (data, or its end), as
    httpcore's own check (httpcore._utils.is_socket_readable): a socket already closed counts."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Body(httpx.AsyncByteStream):
    """A response's body as it arrives: each piece aiohttp has received when it is asked."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while chunk := await content.readany():
                yield chunk
        except aiohttp.ClientError as error:
            raise _mapped(error) from error

    async def aclose(self) -> None:
        # A body read to its end gave its connection back to the pool already; one not read to its
        # end closes it here, and the provider sees the cancel at once.
        self._response.close()


async def _pieces(content: bytes, deadline: asyncio.Timeout, seconds: float | None) -> AsyncIterator[bytes]:
    """A large body in pieces, each to be written within `seconds`: aiohttp asks for the next piece
    once it has written the last one (its buffer drained into the socket), and has no write timeout
    of its own. A provider that stops reading would otherwise hold the request for ever."""
    loop = asyncio.get_running_loop()
    for start in range(0, len(content), WRITE_PIECE):
        deadline.reschedule(None if seconds is None else loop.time() + seconds)
        yield content[start : start + WRITE_PIECE]
    deadline.reschedule(None)  # all of it written: the answer's wait is the read timeout's


def _mapped(error: aiohttp.ClientError) -> httpx.TransportError:
    """The httpx error httpcore raised for the same failure."""
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(error))
    if isinstance(error, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(str(error))
    if isinstance(error, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(error))
    if isinstance(
        error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError
    ):
        return httpx.RemoteProtocolError(str(error))
    if isinstance(error, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(str(error))
    return httpx.ReadError(str(error))


def _sum(pool: float | None, connect: float | None) -> float | None:
    """aiohttp's `connect` timeout covers the wait for the pool and the connecting both."""
    return None if pool is None or connect is None else pool + connect
