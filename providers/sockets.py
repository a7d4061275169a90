"""httpcore's network backend on asyncio's own transports and protocols, without anyio.

httpcore reaches the network through anyio by default (AutoBackend → AnyIOBackend): every read and
write opens a cancel scope, asks sniffio which event loop runs, goes through anyio's SocketStream
(which pauses and resumes the socket's reading around each read, two epoll_ctl calls) and, for
https, through anyio's own TLS layer. The hub only ever runs on asyncio, so its connections are
asyncio transports read through a small protocol here: a read of data already received returns it
without suspending, a read that must wait waits on one future with one timer, and a write is a
transport write that waits only when the transport asks the writer to pause. A small write is held
until the next write or the loop's next turn, whichever comes first: httpcore writes a request's
head, then its body, then reads, so the two leave in one send (issue 16: a send to a provider is a
system call and a TCP segment through the kernel, ~2% of a request's CPU; a request made one less).

What httpcore sees is what AnyIOBackend gives it, failure for failure: OSError while connecting is
ConnectError, a timeout there ConnectTimeout; a read or write on a connection that broke is
ReadError / WriteError (the OSError as its cause, where ConnectionRefusedError is looked for), one
that timed out ReadTimeout / WriteTimeout; a read at the body's end is b"". A TLS handshake that
fails or times out is ConnectError / ConnectTimeout. `is_readable`, which the pool asks of each
idle connection to drop those the server closed, counts what asyncio has already received (data,
end of stream, a lost connection) as well as what waits in the socket. It runs on asyncio's loop
and on uvloop's alike (llmhub/event_loop.py): only the loop's public transport API is used.

httpcore's connections lock through anyio too, and anyio's Lock yields to the event loop on every
acquire, even of a lock no one holds (its fairness checkpoint): three trips through the loop a request,
each resuming the run's whole chain of awaits. AsyncioPool's connections lock with asyncio's Lock,
which takes a free lock at once.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore

# (level, option, value) or (level, option, None, length), as socket.setsockopt takes them.
SocketOption = tuple[Any, ...]

# Received bytes kept before the socket's reading is paused (a provider may send faster than the
# hub's client reads); reading resumes once a read has taken them.
READ_BUFFER_LIMIT = 256 * 1024
# The largest write held back to leave with the next one (a request's head is well under it).
HOLD_BYTES = 16 * 1024


class _Protocol(asyncio.Protocol):
    """What the transport received, and the futures of a read or a write that waits."""

    def __init__(self) -> None:
        # Kept: on Python 3.11 each asyncio.get_running_loop() costs a getpid() system call.
        self.loop = asyncio.get_running_loop()
        self.transport: Any = None
        self.chunks: list[bytes] = []
        self.size = 0
        self.ended = False  # the peer's end of stream, or the connection lost
        self.error: BaseException | None = None  # why the connection was lost, if it broke
        self.paused = False  # reading paused: READ_BUFFER_LIMIT reached
        self.write_paused = False  # the transport's buffer is full: a write waits for it to drain
        self.reader: asyncio.Future[None] | None = None  # a read waiting for data
        self.writer: asyncio.Future[None] | None = None  # a write waiting for the buffer to drain

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size >= READ_BUFFER_LIMIT and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> None:
        self.ended = True
        self._wake_reader()
        # None: the transport closes itself (an HTTP client has nothing to send after the end).

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self.error = exc
        self.write_paused = False
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        if self.reader is not None and not self.reader.done():
            self.reader.set_result(None)

    def _wake_writer(self) -> None:
        if self.writer is not None and not self.writer.done():
            self.writer.set_result(None)


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


async def _wait(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None], timeout: float | None) -> None:
    """Wait for a future of the protocol, at most `timeout` seconds (TimeoutError). One timer on the
    future itself: no task, and none of asyncio.timeout's cancel and uncancel of the caller's task."""
    if timeout is None:
        await waiter
        return
    timer = loop.call_later(timeout, _time_out, waiter)
    try:
        await waiter
    finally:
        timer.cancel()


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self._closed = False
        self._held = b""  # a small write not sent yet: sent with the next write, or as the loop turns

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        if not protocol.chunks and not protocol.ended:
            if self._closed:
                raise httpcore.ReadError("the connection is closed")
            protocol.reader = protocol.loop.create_future()
            try:
                await _wait(protocol.loop, protocol.reader, timeout)
            except TimeoutError as error:
                raise httpcore.ReadTimeout(error) from error
            finally:
                protocol.reader = None
        if protocol.chunks:
            return self._take(max_bytes)
        if self._closed:
            raise httpcore.ReadError("the connection is closed")
        if protocol.error is not None:
            raise httpcore.ReadError(protocol.error) from protocol.error
        return b""

    def _take(self, max_bytes: int) -> bytes:
        protocol = self._protocol
        chunks = protocol.chunks
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        if len(data) > max_bytes:
            data, rest = data[:max_bytes], data[max_bytes:]
            chunks.append(rest)
        protocol.size -= len(data)
        if protocol.paused and protocol.size < READ_BUFFER_LIMIT:
            protocol.paused = False
            self._transport.resume_reading()
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if self._closed:
            raise httpcore.WriteError("the connection is closed")
        if protocol.error is not None:
            raise httpcore.WriteError(protocol.error) from protocol.error
        if self._transport.is_closing():
            raise httpcore.WriteError("the connection was closed by the server")
        if self._held:
            buffer, self._held = self._held + buffer, b""
        elif len(buffer) <= HOLD_BYTES:
            self._held = buffer
            protocol.loop.call_soon(self._send_held)
            return
        self._transport.write(buffer)
        if protocol.write_paused:
            protocol.writer = protocol.loop.create_future()
            try:
                await _wait(protocol.loop, protocol.writer, timeout)
            except TimeoutError as error:
                raise httpcore.WriteTimeout(error) from error
            finally:
                protocol.writer = None
            if protocol.error is not None:
                raise httpcore.WriteError(protocol.error) from protocol.error

    def _send_held(self) -> None:
        """The held write sent, if nothing took it along: the loop turned after it."""
        held, self._held = self._held, b""
        if held and not self._closed and not self._transport.is_closing():
            self._transport.write(held)

    async def aclose(self) -> None:
        # As AnyIOBackend: abort, the socket closed at once (no TLS close_notify, nothing flushed).
        self._closed = True
        self._transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self._send_held()  # before the handshake (a proxy's CONNECT, say, was read already)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as error:
            await self.aclose()
            raise httpcore.ConnectTimeout(error) from error
        except (OSError, ssl.SSLError) as error:  # ssl.SSLError is an OSError; named for the reader
            await self.aclose()
            raise httpcore.ConnectError(error) from error
        except BaseException:
            await self.aclose()
            raise
        if transport is None:  # the connection was lost just as the handshake ended
            await self.aclose()
            raise httpcore.ConnectError("the connection was lost during the TLS handshake")
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        if info == "is_readable":
            protocol = self._protocol
            if protocol.chunks or protocol.ended or self._closed:
                return True
            return _readable(self._transport.get_extra_info("socket"))
        return None


class AsyncioPool(httpcore.AsyncConnectionPool):
    """httpcore's pool, its connections those below. Built as providers/network.py builds it: no
    proxy, HTTP/1.1 only, no local address or socket options."""

    def create_connection(self, origin: httpcore.Origin) -> httpcore.AsyncConnectionInterface:
        return _Connection(
            origin=origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            network_backend=self._network_backend,
        )

    async def _close_connections(self, closing: list[httpcore.AsyncConnectionInterface]) -> None:
        # Called twice a request, nearly always with nothing to close: httpcore would enter an anyio
        # cancel scope for it each time all the same (~40,000 instructions, measured).
        if closing:
            await super()._close_connections(closing)


class _Connection(httpcore.AsyncHTTPConnection):
    """httpcore's connection, locked with asyncio's Lock instead of anyio's: never contended, as the
    pool gives an HTTP/1.1 connection to one request at a time, until its response is closed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _use_asyncio_lock(self, "_request_lock")

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        response = await super().handle_async_request(request)
        # Made by the first request (which took it once, anyio's), free again now: the response
        # takes it when it is closed.
        if not isinstance(getattr(self._connection, "_state_lock", None), asyncio.Lock):
            _use_asyncio_lock(self._connection, "_state_lock")
        return response


def _use_asyncio_lock(owner: object, name: str) -> None:
    """An asyncio Lock in place of httpcore's lock `name` of `owner`. An httpcore that named it
    otherwise fails here, instead of taking its own through the loop unnoticed."""
    if type(getattr(owner, name, None)).__name__ != "AsyncLock":
        raise RuntimeError(f"{type(owner).__name__}.{name} is not the httpcore lock it was")
    setattr(owner, name, asyncio.Lock())


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """TCP connections only: providers are never reached over a unix socket (GuardedBackend refuses
    one), so httpcore's default for that, NotImplementedError, stands."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = None if local_address is None else (local_address, 0)
        try:
            async with asyncio.timeout(timeout):
                transport, protocol = await loop.create_connection(_Protocol, host, port, local_addr=local)
        except TimeoutError as error:
            raise httpcore.ConnectTimeout(error) from error
        except OSError as error:
            raise httpcore.ConnectError(error) from error
        return _configured(transport, protocol, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _readable(sock: Any) -> bool:
    """Whether a read of the socket would not wait (data, or its end), as httpcore's own check
    (httpcore._utils.is_socket_readable): a socket already closed counts as readable."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _configured(
    transport: Any, protocol: _Protocol, socket_options: Iterable[SocketOption] | None
) -> AsyncioStream:
    """The stream, its socket options set as AnyIOBackend sets them (after connecting; asyncio
    already sets TCP_NODELAY)."""
    if socket_options:
        sock: socket.socket = transport.get_extra_info("socket")
        try:
            for option in socket_options:
                sock.setsockopt(*option)
        except OSError as error:
            transport.abort()
            raise httpcore.ConnectError(error) from error
    return AsyncioStream(transport, protocol)
