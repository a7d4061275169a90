"""The hub's network backend (providers/sockets.py) against real servers on 127.0.0.1: https with a
certificate made here, pooled connections that the server closed or wrote on while idle, flow
control, and each failure the same httpcore error as under httpcore's own anyio backend."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import httpcore
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from providers import http, network
from providers.adapters.openai import OpenAIAdapter
from providers.base import GenerationRequest, Message
from providers.http import _refused
from providers.sockets import AsyncioBackend
from tests.conftest import GOOD_KEYS, adapter_for
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeProvider

BACKENDS = {"asyncio": AsyncioBackend, "anyio": httpcore.AnyIOBackend}
ASK = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 50}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request) -> httpcore.AsyncNetworkBackend:
    """Each failure test runs on both backends: the hub's must fail as httpcore's own does."""
    return BACKENDS[request.param]()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[str, str, bytes]:
    """A self-signed certificate for 127.0.0.1: its file, its key's file, and its PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmhub test provider")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(folder / "cert.pem"), str(folder / "key.pem"), pem


@pytest.fixture
def tls_openai(certificate) -> Iterator[FakeProvider]:
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(certificate[0], certificate[1])
    fake = FakeOpenAI(api_keys={GOOD_KEYS["openai"]}).start(tls=server_context)
    try:
        yield fake
    finally:
        fake.stop()


def trusting(certificate) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=certificate[2].decode())


def hub_pool(ssl_context: ssl.SSLContext | None = None) -> httpcore.AsyncConnectionPool:
    """A pool as providers/network.py builds it (its backend, the address policy), trusting `ssl_context`."""
    return httpcore.AsyncConnectionPool(
        ssl_context=ssl_context, network_backend=network.GuardedBackend(private_network=True)
    )


async def chat(pool: httpcore.AsyncConnectionPool, fake: FakeProvider, stream: bool = False) -> bytes:
    headers = {"authorization": f"Bearer {GOOD_KEYS['openai']}", "content-type": "application/json"}
    body = json.dumps({**ASK, "stream": stream}).encode()
    response = await pool.request("POST", f"{fake.url}/chat/completions", headers=headers, content=body)
    assert response.status == 200, response.content
    return response.content


async def test_https_goes_through_the_hubs_backend_on_one_connection(tls_openai, certificate):
    async with hub_pool(trusting(certificate)) as pool:
        answer = json.loads(await chat(pool, tls_openai))
        assert answer["choices"][0]["message"]["content"] == tls_openai.reply_text
        streamed = (await chat(pool, tls_openai, stream=True)).decode()
        assert streamed.rstrip().endswith("data: [DONE]")
        await chat(pool, tls_openai)
        [connection] = pool.connections
        stream = connection._connection._network_stream  # the backend's stream under httpcore's connection
        assert isinstance(stream.get_extra_info("ssl_object"), ssl.SSLObject)
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", tls_openai.port)
        assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
    assert tls_openai.connections == 1


async def test_an_untrusted_certificate_is_a_connect_error(backend, tls_openai):
    stream = await backend.connect_tcp("127.0.0.1", tls_openai.port, timeout=5)
    with pytest.raises(httpcore.ConnectError) as caught:
        await stream.start_tls(ssl.create_default_context(), server_hostname="127.0.0.1", timeout=5)
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A port whose connections the kernel accepts and nobody ever answers."""
    server = socket.create_server(("127.0.0.1", 0))
    try:
        yield server
    finally:
        server.close()


async def test_a_tls_handshake_nobody_answers_times_out_as_a_connect_timeout(backend, silent_server):
    stream = await backend.connect_tcp("127.0.0.1", silent_server.getsockname()[1], timeout=5)
    with pytest.raises(httpcore.ConnectTimeout):
        await stream.start_tls(ssl.create_default_context(), server_hostname="127.0.0.1", timeout=0.2)


async def test_a_read_nobody_answers_is_a_read_timeout(backend, silent_server):
    stream = await backend.connect_tcp("127.0.0.1", silent_server.getsockname()[1], timeout=5)
    try:
        started = time.monotonic()
        with pytest.raises(httpcore.ReadTimeout):
            await stream.read(65536, timeout=0.2)
        assert 0.15 < time.monotonic() - started < 2
    finally:
        await stream.aclose()


async def test_a_write_nobody_reads_is_a_write_timeout(backend, silent_server):
    stream = await backend.connect_tcp("127.0.0.1", silent_server.getsockname()[1], timeout=5)
    try:
        with pytest.raises(httpcore.WriteTimeout):
            await stream.write(b"x" * 64 * 1024 * 1024, timeout=0.2)
    finally:
        await stream.aclose()


async def test_a_refused_connection_is_a_connect_error_that_says_refused(backend):
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    with pytest.raises(httpcore.ConnectError) as caught:
        await backend.connect_tcp("127.0.0.1", port, timeout=5)
    assert _refused(caught.value)


def serve_once(reply: bytes, reset: bool = False) -> tuple[int, threading.Thread, list[bytes]]:
    """A server for one connection: reads what the client sends until it has a request, answers
    `reply`, then closes (with a reset, if asked)."""
    server = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def run() -> None:
        with server:
            connection, _ = server.accept()
            with connection:
                while b"\r\n\r\n" not in b"".join(received):
                    data = connection.recv(65536)
                    if not data:
                        break
                    received.append(data)
                connection.sendall(reply)
                if reset:
                    connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return server.getsockname()[1], thread, received


async def test_a_read_returns_what_was_sent_then_nothing_at_the_end(backend):
    port, thread, received = serve_once(b"the answer")
    stream = await backend.connect_tcp("127.0.0.1", port, timeout=5)
    try:
        await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=5)
        data = b""
        while chunk := await stream.read(4, timeout=5):
            assert len(chunk) <= 4
            data += chunk
        assert data == b"the answer"
        assert await stream.read(4, timeout=5) == b""
    finally:
        await stream.aclose()
    thread.join(5)
    assert b"".join(received) == b"GET / HTTP/1.1\r\n\r\n"


async def test_a_connection_reset_is_a_read_error_then_a_write_error(backend):
    port, thread, _ = serve_once(b"", reset=True)
    stream = await backend.connect_tcp("127.0.0.1", port, timeout=5)
    try:
        await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=5)
        await asyncio.to_thread(thread.join, 5)  # the loop turns meanwhile: a held write leaves
        with pytest.raises(httpcore.ReadError):
            await stream.read(65536, timeout=5)
        with pytest.raises(httpcore.WriteError):
            await stream.write(b"more", timeout=5)
    finally:
        await stream.aclose()


def received_now(peer: socket.socket) -> bytes:
    """What a non-blocking socket has received so far (loopback delivers a send at once)."""
    try:
        return peer.recv(65536)
    except BlockingIOError:
        return b""


async def test_a_request_head_leaves_with_its_body_and_a_lone_write_as_the_loop_turns():
    """httpcore writes a request's head, then its body: the hub's backend sends them in one send,
    one TCP segment instead of two. A write that no other follows still leaves once the loop turns."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", server.getsockname()[1], timeout=5)
        peer, _ = server.accept()
        peer.setblocking(False)
        try:
            head, body = b"POST / HTTP/1.1\r\ncontent-length: 4\r\n\r\n", b"ping"
            await stream.write(head, timeout=5)
            assert received_now(peer) == b""  # held for the body
            await stream.write(body, timeout=5)
            assert received_now(peer) == head + body
            await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=5)
            await asyncio.sleep(0)
            assert received_now(peer) == b"GET / HTTP/1.1\r\n\r\n"
        finally:
            peer.close()
            await stream.aclose()


async def test_a_large_body_is_written_whole_to_a_slow_reader(backend):
    server = socket.create_server(("127.0.0.1", 0))
    size, got = 16 * 1024 * 1024, []

    def read_slowly() -> None:
        with server, server.accept()[0] as connection:
            while sum(got) < size:
                time.sleep(0.001)
                data = connection.recv(256 * 1024)
                if not data:
                    return
                got.append(len(data))

    thread = threading.Thread(target=read_slowly, daemon=True)
    thread.start()
    stream = await backend.connect_tcp("127.0.0.1", server.getsockname()[1], timeout=5)
    try:
        await stream.write(b"x" * size, timeout=30)
        thread.join(30)
    finally:
        await stream.aclose()
    assert sum(got) == size


def ask() -> GenerationRequest:
    return GenerationRequest("gpt-4o-mini", (Message("user", "Say hello."),), max_tokens=50)


async def test_a_pooled_connection_the_server_closed_is_not_used_again(fake_openai):
    """The server ends a kept-alive connection after its answer; the next request opens another
    instead of failing on the closed one."""
    adapter = adapter_for(OpenAIAdapter, fake_openai)
    await adapter.generate(ask())  # a pooled connection to begin with
    fake_openai.close_after_next()
    await adapter.generate(ask())
    deadline = time.monotonic() + 5
    while fake_openai.closed < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert fake_openai.closed == 1
    answer = await adapter.generate(ask())
    assert answer.content == fake_openai.reply_text
    assert fake_openai.connections == 2


@pytest.mark.parametrize("loop_ran", [True, False], ids=["read by the loop", "still in the socket"])
async def test_an_idle_connection_is_readable_once_the_server_closes_it(backend, silent_server, loop_ran):
    """What the pool asks of an idle connection to drop one the server closed: true whether the
    event loop has read the close already or it still waits in the socket."""
    stream = await backend.connect_tcp("127.0.0.1", silent_server.getsockname()[1], timeout=5)
    try:
        connection, _ = silent_server.accept()
        await asyncio.sleep(0.05)
        assert stream.get_extra_info("is_readable") is False
        connection.close()
        if loop_ran:
            await asyncio.sleep(0.1)
        else:
            time.sleep(0.1)  # the loop does not run: the close is not read by asyncio yet
        assert stream.get_extra_info("is_readable") is True
        assert await stream.read(65536, timeout=5) == b""
    finally:
        await stream.aclose()


async def test_a_pooled_connection_the_server_wrote_on_while_idle_is_not_used_again(fake_openai):
    """Bytes that arrive on an idle connection (asyncio has already read them off the socket) are
    not the next request's answer: that connection is dropped."""
    adapter = adapter_for(OpenAIAdapter, fake_openai)
    await adapter.generate(ask())
    fake_openai.send_after_next(b"HTTP/1.1 500 Not Asked\r\ncontent-length: 0\r\n\r\n")
    await adapter.generate(ask())
    await asyncio.sleep(0.3)
    answer = await adapter.generate(ask())
    assert answer.content == fake_openai.reply_text
    assert fake_openai.connections == 2


async def test_a_large_answer_is_read_whole_when_read_slowly(backend):
    """More than the backend keeps received before it stops reading the socket: all of it
    arrives, in order, once reads take it."""
    answer = bytes(range(256)) * (16 * 1024)  # 4 MiB
    port, thread, _ = serve_once(answer)
    stream = await backend.connect_tcp("127.0.0.1", port, timeout=5)
    try:
        await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=5)
        await asyncio.sleep(0.2)  # the answer waits, unread
        pieces = []
        while chunk := await stream.read(65536, timeout=5):
            assert len(chunk) <= 65536
            pieces.append(chunk)
    finally:
        await stream.aclose()
    thread.join(5)
    assert b"".join(pieces) == answer


async def test_a_connections_locks_are_taken_without_a_turn_of_the_event_loop(fake_openai):
    """httpcore locks each connection for a request and again for its response's close; anyio's Lock
    (httpcore's own on asyncio) yields to the loop on every acquire, even of a free lock."""
    adapter = adapter_for(OpenAIAdapter, fake_openai)
    for _ in range(2):  # a new connection, then the same one from the pool
        assert (await adapter.generate(ask())).content == fake_openai.reply_text
        [connection] = http.shared_transport(adapter.http.private_network)._pool.connections
        turned = []
        asyncio.get_running_loop().call_soon(turned.append, True)  # runs on the loop's next turn
        for lock in (connection._request_lock, connection._connection._state_lock):
            async with lock:
                pass
        assert not turned
    assert fake_openai.connections == 1
