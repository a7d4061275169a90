"""The hub's transport (providers/transport.py, aiohttp behind httpx's interface) against real servers
on 127.0.0.1: https with a certificate made here, kept-alive connections and the pool's limits, and
each failure the httpx error the rest of the hub expects (the one httpcore raised)."""

from __future__ import annotations

import asyncio
import datetime
import gc
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import aiohttp
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from providers import http, network
from providers.adapters.openai import OpenAIAdapter
from providers.base import GenerationRequest, Message
from providers.http import _refused
from providers.transport import AiohttpTransport, _Protocol
from tests.conftest import GOOD_KEYS, adapter_for
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import FakeProvider

ASK = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 50}


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


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A port whose connections the kernel accepts and nobody ever answers."""
    server = socket.create_server(("127.0.0.1", 0))
    try:
        yield server
    finally:
        server.close()


def hub_transport(
    ssl_context: ssl.SSLContext | None = None, limits: httpx.Limits = http.POOL_LIMITS
) -> AiohttpTransport:
    """A transport as providers/network.py builds it (the address policy, no cookies), trusting
    `ssl_context` instead of the CA bundle when given."""
    connector = network.GuardedConnector(private_network=True, limits=limits, ssl_context=ssl_context)
    return AiohttpTransport(aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()))


def chat_request(
    url: str, stream: bool = False, timeout: float = 5, body: bytes | None = None
) -> httpx.Request:
    headers = {"authorization": f"Bearer {GOOD_KEYS['openai']}", "content-type": "application/json"}
    content = json.dumps({**ASK, "stream": stream}).encode() if body is None else body
    return httpx.Request(
        "POST",
        f"{url}/chat/completions",
        headers=headers,
        content=content,
        extensions={"timeout": httpx.Timeout(timeout).as_dict()},
    )


async def chat(transport: AiohttpTransport, url: str, stream: bool = False, timeout: float = 5) -> bytes:
    response = await transport.handle_async_request(chat_request(url, stream, timeout))
    try:
        assert response.status_code == 200
        return b"".join([chunk async for chunk in response.stream])
    finally:
        await response.aclose()


async def test_https_answers_and_streams_on_one_kept_alive_connection(tls_openai, certificate):
    transport = hub_transport(ssl.create_default_context(cadata=certificate[2].decode()))
    try:
        answer = json.loads(await chat(transport, tls_openai.url))
        assert answer["choices"][0]["message"]["content"] == tls_openai.reply_text
        streamed = (await chat(transport, tls_openai.url, stream=True)).decode()
        assert streamed.rstrip().endswith("data: [DONE]")
        await chat(transport, tls_openai.url)
    finally:
        await transport.aclose()
    assert tls_openai.connections == 1


async def test_an_untrusted_certificate_is_a_connect_error(tls_openai):
    transport = hub_transport()  # the CA bundle: the test's certificate is not in it
    try:
        with pytest.raises(httpx.ConnectError) as caught:
            await chat(transport, tls_openai.url)
    finally:
        await transport.aclose()
    assert isinstance(caught.value.__cause__.__cause__, ssl.SSLCertVerificationError)


async def test_a_tls_handshake_nobody_answers_is_a_connect_timeout(silent_server):
    transport = hub_transport()
    try:
        with pytest.raises(httpx.ConnectTimeout):
            await chat(transport, f"https://127.0.0.1:{silent_server.getsockname()[1]}", timeout=0.2)
    finally:
        await transport.aclose()


async def test_an_answer_that_never_comes_is_a_read_timeout(silent_server):
    transport = hub_transport()
    try:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await chat(transport, f"http://127.0.0.1:{silent_server.getsockname()[1]}", timeout=0.2)
        assert 0.15 < time.monotonic() - started < 2
    finally:
        await transport.aclose()


async def test_a_body_nobody_reads_is_a_write_timeout(silent_server):
    """aiohttp has no write timeout of its own: without the transport's, this request never ends."""
    transport = hub_transport()
    url = f"http://127.0.0.1:{silent_server.getsockname()[1]}"
    try:
        started = time.monotonic()
        with pytest.raises(httpx.WriteTimeout):
            request = chat_request(url, timeout=0.2, body=b"x" * 64 * 1024 * 1024)
            await asyncio.wait_for(transport.handle_async_request(request), 10)
        assert time.monotonic() - started < 5
    finally:
        await transport.aclose()


async def test_a_large_body_is_written_whole_to_a_slow_reader(fake_openai):
    """Pieces of a large body each wait for the reader, within the write timeout, not the whole."""
    transport = hub_transport()
    body = json.dumps({**ASK, "padding": "x" * 8 * 1024 * 1024}).encode()
    try:
        response = await transport.handle_async_request(chat_request(fake_openai.url, timeout=30, body=body))
        await response.aread()
        await response.aclose()
    finally:
        await transport.aclose()
    assert response.status_code == 200
    assert fake_openai.last_request.body["padding"] == "x" * 8 * 1024 * 1024


async def test_a_refused_connection_is_a_connect_error_that_says_refused():
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    transport = hub_transport()
    try:
        with pytest.raises(httpx.ConnectError) as caught:
            await chat(transport, f"http://127.0.0.1:{port}")
    finally:
        await transport.aclose()
    assert _refused(caught.value)


def serve_once(reply: bytes) -> int:
    """A server for one connection: reads a request's head, answers `reply`, then closes."""
    server = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        with server, server.accept()[0] as connection:
            received = b""
            while b"\r\n\r\n" not in received and (data := connection.recv(65536)):
                received += data
            connection.sendall(reply)

    threading.Thread(target=run, daemon=True).start()
    return server.getsockname()[1]


@pytest.mark.parametrize(
    "reply",
    [b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part of it", b""],
    ids=["body-ended-early", "closed-without-answering"],
)
async def test_a_server_that_ends_its_answer_early_is_a_remote_protocol_error(reply):
    port = serve_once(reply)
    transport = hub_transport()
    try:
        with pytest.raises(httpx.RemoteProtocolError):
            await chat(transport, f"http://127.0.0.1:{port}")
    finally:
        await transport.aclose()


async def test_no_more_idle_connections_are_kept_than_the_limit(fake_openai):
    """aiohttp would keep every one until its keep-alive expiry; httpx.Limits keeps at most
    max_keepalive_connections, and so does the hub."""
    transport = hub_transport(limits=httpx.Limits(max_keepalive_connections=2, keepalive_expiry=30))
    for _ in range(3):  # three answers open at once: three connections
        fake_openai.stream_raw_next([b"data: x\n\n"] * 3, every=0.1)
    try:
        responses = await asyncio.gather(
            *(transport.handle_async_request(chat_request(fake_openai.url, stream=True)) for _ in range(3))
        )
        for response in responses:
            assert b"".join([chunk async for chunk in response.stream]) == b"data: x\n\n" * 3
            await response.aclose()
        deadline = time.monotonic() + 5
        while fake_openai.closed < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert (fake_openai.connections, fake_openai.closed) == (3, 1)
    finally:
        await transport.aclose()


def ask() -> GenerationRequest:
    return GenerationRequest("gpt-4o-mini", (Message("user", "Say hello."),), max_tokens=50)


def test_a_loops_pool_is_closed_with_the_loop_without_a_complaint(fake_openai, caplog):
    """Each asyncio.run (a management command, asgiref's async_to_sync) has a pool of its own:
    closed, and its connections with it, as the loop ends, not left for aiohttp to complain of."""
    adapter = adapter_for(OpenAIAdapter, fake_openai)
    with caplog.at_level(logging.WARNING):
        assert asyncio.run(adapter.generate(ask())).content == fake_openai.reply_text
        gc.collect()
    deadline = time.monotonic() + 5
    while fake_openai.closed < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_openai.closed == 1
    assert "Unclosed" not in caplog.text


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


async def test_a_pooled_connection_the_server_wrote_on_while_idle_is_not_used_again(fake_openai):
    """Bytes that arrive on an idle connection are not the next request's answer: that connection
    is dropped."""
    adapter = adapter_for(OpenAIAdapter, fake_openai)
    await adapter.generate(ask())
    fake_openai.send_after_next(b"HTTP/1.1 500 Not Asked\r\ncontent-length: 0\r\n\r\n")
    await adapter.generate(ask())
    await asyncio.sleep(0.3)
    answer = await adapter.generate(ask())
    assert answer.content == fake_openai.reply_text
    assert fake_openai.connections == 2


async def test_an_answer_larger_than_the_read_buffer_arrives_whole_when_read_late(fake_openai):
    """A body sent faster than it is read fills aiohttp's buffer, which pauses reading from the
    socket; reading it then resumes the socket until the whole body has arrived (the transport's
    protocol resumes only a paused connection)."""
    pieces = [b"data: %06d %s\n\n" % (n, b"x" * 1000) for n in range(2000)]  # ~2 MB, 2,000 chunks
    fake_openai.stream_raw_next(pieces)
    transport = hub_transport()
    try:
        response = await transport.handle_async_request(chat_request(fake_openai.url, stream=True))
        await asyncio.sleep(0.3)  # the buffer fills and reading pauses
        async with asyncio.timeout(10):  # a connection never resumed would wait for ever
            body = b"".join([chunk async for chunk in response.stream])
        await response.aclose()
        assert body == b"".join(pieces)
        second = await chat(transport, fake_openai.url)  # the connection, read to its end, reused
        assert json.loads(second)["choices"][0]["message"]["content"] == fake_openai.reply_text
        assert fake_openai.connections == 1
        # The connection was made with the transport's own protocol (aiohttp made it through the
        # connector's _factory, a private name an upgrade could drop without this test hanging).
        pooled = [protocol for held in transport.session.connector._conns.values() for protocol, _ in held]
        assert pooled and all(isinstance(protocol, _Protocol) for protocol in pooled)
    finally:
        await transport.aclose()
