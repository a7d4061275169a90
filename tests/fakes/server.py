"""A real HTTP server on 127.0.0.1 for fake providers: JSON and chunked streams, with faults.

Each fake (openai.py, anthropic.py, ...) subclasses FakeProvider and implements `route()`.
Tests, browser tests and benchmarks share these. Faults are set per test:

    fake.fail_next(429, headers={"retry-after": "2"})   # the provider's own error body
    fake.hang_next(10)                                   # answer nothing for 10 s
    fake.cut_next_stream(after=3)                        # drop the connection after 3 events
    fake.stream_raw_next([b"data: ...\n\n"], every=0.1)  # any bytes, as a chunked stream
    fake.keep_alives_forever_next(every=0.05)            # SSE comments and nothing else, forever
    fake.trickle_next(every=0.2)                         # one byte at a time, never a whole line
    fake.huge_line_next(10 * 1024 * 1024)                # one stream line of 10 MB
    fake.close_after_next()                              # answer, then close the kept-alive connection
    fake.send_after_next(b"junk")                        # answer, then (0.1 s later) send these bytes

`start(tls=context)` serves https with that server-side SSL context.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import tiktoken


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def json(self) -> Any:
        return self.body


@dataclass
class Reply:
    status: int
    body: Any  # a dict for JSON, or bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamReply:
    """A chunked response; each item of `chunks` is written and flushed on its own."""

    chunks: Iterable[bytes]
    content_type: str = "text/event-stream"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    every: float | None = None  # seconds between chunks; None: the fake's chunk_delay


@dataclass
class _Fault:
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0
    cut_after: int | None = None
    raw: bytes | None = None
    stream: StreamReply | None = None
    close_after: bool = False
    send_after: bytes = b""


class FakeProvider:
    """Base class: serves `route()` on 127.0.0.1 in a background thread."""

    name = "fake"
    prefix = "/v1"

    def __init__(self, api_keys: Iterable[str] = ("sk-test-good-key-0000vX2Q",)) -> None:
        self.api_keys = set(api_keys)
        self.requests: list[RecordedRequest] = []
        self.reply_text = "Hello from the fake provider. This is a streamed answer."
        self.chunk_delay = 0.0  # seconds between stream chunks
        self.realistic = False  # count tokens as the real provider does
        self.ignore_max_tokens = False  # a misbehaving provider that streams past the limit
        self.client_disconnected = threading.Event()
        self.streams_completed = 0
        self.connections = 0  # TCP connections accepted: a client that reuses them opens one
        self.closed = 0  # connections the server has closed (after the client, or on its own)
        self.embedded: list[list] = []  # the inputs of each embeddings request answered
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._tls: ssl.SSLContext | None = None

    # ---- lifecycle
    def start(self, port: int = 0, tls: ssl.SSLContext | None = None) -> FakeProvider:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._tls = tls
        self._server = _Server(("127.0.0.1", port), handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The endpoint as a user would type it: base URL with the version path."""
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}{self.prefix}"

    # ---- faults
    def fail_next(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        """Answer the next request with this status and the provider's own error body."""
        if body is None:
            body = self.error_body(status)
        self._push(_Fault(status=status, body=body, headers=headers or {}))

    def fail_next_as(self, failure: str) -> None:
        """Answer the next request with one of the provider's real failures, by name:
        invalid_key, forbidden, rate_limited (retry-after 7 s), model_not_found,
        quota_exceeded, server_error, overloaded."""
        status, body, headers = self.failure(failure)
        self._push(_Fault(status=status, body=body, headers=headers))

    def hang_next(self, seconds: float) -> None:
        self._push(_Fault(hang=seconds))

    def cut_next_stream(self, after: int) -> None:
        """Close the connection after `after` chunks of the next stream, with no end event."""
        self._push(_Fault(cut_after=after))

    def reply_raw_next(
        self,
        body: bytes,
        status: int = 200,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next request with these bytes as they are (an HTML page, a broken gzip body...)."""
        self._push(_Fault(raw=body, status=status, headers={"content-type": content_type, **(headers or {})}))

    def stream_raw_next(
        self,
        chunks: Iterable[bytes],
        every: float = 0.0,
        content_type: str = "text/event-stream",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next request with a 200 chunked stream of these bytes (an endless iterable is
        written until the client hangs up)."""
        reply = StreamReply(chunks, content_type=content_type, headers=headers or {}, every=every)
        self._push(_Fault(stream=reply))

    def keep_alives_forever_next(self, every: float = 0.05) -> None:
        """A stream of SSE comments (keep-alives) that never sends an event."""
        self.stream_raw_next(itertools.repeat(b": keep-alive\n\n"), every=every)

    def trickle_next(self, every: float = 0.2) -> None:
        """One byte every `every` seconds of a line that never ends."""
        self.stream_raw_next(itertools.chain([b"data: "], itertools.repeat(b"x")), every=every)

    def huge_line_next(self, size: int) -> None:
        """One stream line of `size` bytes, sent in 64 KiB pieces, and nothing after it."""
        self.stream_raw_next(huge_line(size))

    def close_after_next(self) -> None:
        """Answer the next request as usual (its connection kept alive, as far as the client can
        tell), then close that connection: a server ending an idle keep-alive connection."""
        self._push(_Fault(close_after=True))

    def send_after_next(self, data: bytes) -> None:
        """Answer the next request as usual, then, a moment later, send these bytes on its idle
        connection."""
        self._push(_Fault(send_after=data))

    def _push(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _pop(self) -> _Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    @property
    def last_request(self) -> RecordedRequest:
        return self.requests[-1]

    # ---- for subclasses
    def route(self, request: RecordedRequest) -> Reply | StreamReply:
        raise NotImplementedError

    def failure(self, name: str) -> tuple[int, Any, dict[str, str]]:
        """(status, body, headers) of the named failure, exactly as this provider sends it."""
        raise NotImplementedError

    def error_body(self, status: int) -> Any:
        return {"error": {"message": f"fake error {status}"}}

    @staticmethod
    def words(text: str) -> list[str]:
        """Split text into stream pieces, keeping the spaces, as providers send them."""
        pieces, current = [], ""
        for char in text:
            current += char
            if char == " ":
                pieces.append(current)
                current = ""
        return pieces + ([current] if current else [])

    @staticmethod
    def stopped(text: str, stops: str | list[str] | None) -> tuple[str, str]:
        """The text a model writes before the first of these stop sequences (which is not sent),
        and that sequence ("" when none occurs)."""
        stops = [stops] if isinstance(stops, str) else stops or []
        found = [(text.find(stop), stop) for stop in stops if stop and stop in text]
        if not found:
            return text, ""
        at, stop = min(found)
        return text[:at], stop

    def count_tokens(self, text: str) -> int:
        """A stand-in tokenizer (about one token per four characters), or in realistic mode the
        provider's own way of counting."""
        if self.realistic:
            return self.realistic_tokens(text)
        return max(len(text.split()), (len(text) + 3) // 4)

    def realistic_tokens(self, text: str) -> int:
        return len(tiktoken.get_encoding("cl100k_base").encode(text))


@dataclass
class Plan:
    """What a fake answers, decided the way a model would: call a tool, or write text."""

    text: str = ""
    tool: str = ""  # the name of the tool to call
    arguments: dict = field(default_factory=dict)

    @property
    def calls(self) -> bool:
        return bool(self.tool)


def plan(
    fake: FakeProvider,
    tools: list[tuple[str, dict]],
    forced: str | None,
    tool_result: str | None,
    schema: dict | None,
    json_mode: bool,
    images: int,
) -> Plan:
    """After a tool result: say what it was. With tools offered (and not refused by tool_choice
    "none", here forced=""): call the forced one or the first, with arguments made from its schema.
    Asked for JSON: an object matching the schema. With images: say how many."""
    if tool_result is not None:
        return Plan(text=f"The tool answered: {tool_result}")
    if tools and forced != "":
        name, parameters = next(((n, p) for n, p in tools if n == forced), tools[0])
        return Plan(tool=name, arguments=example_for(parameters or {"type": "object"}))
    if schema is not None or json_mode:
        value = example_for(schema) if schema else {"answer": fake.reply_text}
        return Plan(text=json.dumps(value))
    if images:
        return Plan(text=f"I see {images} image{'s' if images > 1 else ''}.")
    return Plan(text=fake.reply_text)


def example_for(schema: dict, defs: dict | None = None) -> Any:
    """A value matching a JSON schema (the subset tools and pydantic models use)."""
    defs = defs if defs is not None else {**schema.get("$defs", {}), **schema.get("definitions", {})}
    if "$ref" in schema:
        return example_for(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return example_for(
                next((s for s in schema[key] if s.get("type") != "null"), schema[key][0]), defs
            )
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object":
        return {name: example_for(sub, defs) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [example_for(schema.get("items") or {"type": "string"}, defs)]
    return {"string": "Paris", "integer": 3, "number": 1.5, "boolean": True, "null": None}[kind]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 drops connections under load (1 s SYN retries)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        tls = self.RequestHandlerClass.fake._tls
        if tls is not None:
            # The handshake runs in the handler's thread, on its first read; one that fails is
            # that connection's error only.
            connection = tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        fake = self.RequestHandlerClass.fake
        with fake._lock:
            fake.closed += 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client closing its idle keep-alive connection is normal, not an error worth a traceback;
        # so is a client refusing the certificate of a TLS test.
        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeProvider
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, as a real server sends them

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    def setup(self) -> None:
        """Once per accepted connection (each serves requests until either side closes it)."""
        super().setup()
        with self.fake._lock:
            self.fake.connections += 1

    def do_GET(self) -> None:
        self._serve(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        self._serve(body)

    def _serve(self, body: Any) -> None:
        fake = self.fake
        request = RecordedRequest(
            self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
        )
        fake.requests.append(request)
        fault = fake._pop()
        if fault and fault.hang:
            time.sleep(fault.hang)
            self.close_connection = True
            return
        if fault and fault.stream is not None:
            self._stream(fault.stream, None)
            return
        if fault and fault.raw is not None:
            self._write(Reply(fault.status or 200, fault.raw, fault.headers))
            return
        if fault and fault.status:
            self._write(Reply(fault.status, fault.body, fault.headers))
            return
        reply = fake.route(request)
        if isinstance(reply, StreamReply):
            self._stream(reply, fault.cut_after if fault else None)
        else:
            self._write(reply)
        if fault and fault.close_after:
            self.wfile.flush()
            self.close_connection = True
        if fault and fault.send_after:
            self.wfile.flush()
            time.sleep(0.1)  # after the client has read the answer: not a part of it
            self.wfile.write(fault.send_after)
            self.wfile.flush()

    def _write(self, reply: Reply) -> None:
        data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        headers = {"content-type": "application/json", **reply.headers}
        self.send_response(reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, reply: StreamReply, cut_after: int | None) -> None:
        self.send_response(reply.status)
        self.send_header("content-type", reply.content_type)
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            for number, chunk in enumerate(reply.chunks):
                if cut_after is not None and number >= cut_after:
                    self.close_connection = True
                    return  # the connection drops with the chunked body unfinished
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
                delay = self.fake.chunk_delay if reply.every is None else reply.every
                if delay:
                    time.sleep(delay)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            self.fake.streams_completed += 1
        except (BrokenPipeError, ConnectionResetError):
            self.fake.client_disconnected.set()
            self.close_connection = True


def huge_line(size: int) -> Iterator[bytes]:
    yield b'data: {"choices":[{"index":0,"delta":{"content":"'
    piece = b"x" * 65536
    for _ in range(size // len(piece)):
        yield piece
    yield b'"}}]}\n\n'


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event."""
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def serve_forever(fake_class: type[FakeProvider]) -> None:
    """`python -m tests.fakes.<name> --port N --key K`: serve a fake until Ctrl-C."""
    parser = argparse.ArgumentParser(description=f"Serve a fake {fake_class.name} on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--key", action="append", required=True, help="an API key it accepts (repeatable)")
    parser.add_argument("--chunk-delay", type=float, default=0.05, help="seconds between streamed pieces")
    options = parser.parse_args()
    # Token counts use the tokenizer files `make` installs (tiktoken would try to download them).
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(__file__).resolve().parents[2] / "var" / "tiktoken"))
    fake = fake_class(api_keys=options.key)
    fake.chunk_delay = options.chunk_delay
    fake.start(options.port)
    print(f"Fake {fake_class.name} on {fake.url} (Ctrl-C stops it)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()
