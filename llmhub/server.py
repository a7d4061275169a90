"""One LLMHub server process: daphne serving the ASGI app, with a drain on SIGTERM and run recovery
(see llmhub/serve.py, which starts it). Imported only by a process that serves: the supervisor of
several workers (llmhub/workers.py) needs neither daphne nor the app."""

from llmhub import event_loop  # isort: skip - sets the event loop policy before daphne makes its loop
from daphne import server as daphne_server  # isort: skip - installs Twisted's asyncio reactor first

import asyncio
import functools
import logging
import os
import signal
import types

from daphne import http_protocol as daphne_http
from twisted.web import http as twisted_http
from twisted.web import http_headers as twisted_headers

from llmhub import memory

logger = logging.getLogger("llmhub.serve")
# After the runs have settled, time for their last frames and events to reach the clients.
FLUSH_SECONDS = 0.5
# A worker (--fd) checks this often that its supervisor is alive; orphaned, it drains and stops
# rather than hold the port with nobody to stop it.
SUPERVISOR_CHECK_SECONDS = 1.0
# Content-Type lines Twisted remembers the media type of (a client sends the same few, always).
CONTENT_TYPES_KEPT = 256
LINE_FEED, CARRIAGE_RETURN = ord("\n"), ord("\r")


def remember_content_types() -> None:
    """Twisted reads the Content-Type of every POST with an email.message.EmailMessage, to see
    whether it is a form it should parse (~60 µs a request, for `application/json` each time). The
    media type of a line never changes, so the same function answers from a cache: the same
    answers, the same forms parsed and refused. Twisted without the function: nothing to do."""
    parse = getattr(twisted_http, "_parseContentType", None)
    if parse is not None and not hasattr(parse, "cache_info"):
        twisted_http._parseContentType = functools.lru_cache(maxsize=CONTENT_TYPES_KEPT)(parse)


def skip_twisted_access_lines() -> None:
    """Twisted's HTTP factory formats an access line (combined log format) for every request and
    writes it to Twisted's log as an event, which daphne at its default verbosity sends nowhere
    (~85,000 instructions a request, counted by callgrind). LLMHub writes its own
    line (ops/middleware.py), so daphne's factory writes none."""
    daphne_http.HTTPFactory.log = _no_access_line


def _no_access_line(factory: twisted_http.HTTPFactory, request: twisted_http.Request) -> None:
    """HTTPFactory.log: LLMHub's own access line is written by ops/middleware.py."""


def read_twisted_http_directly() -> None:
    """twisted.web.http is wrapped in Twisted's deprecation proxy (for its HTTPClient), whose
    __getattribute__ is Python run on every read of the module's names: daphne's WebRequest reads
    `http.Request` three times a request (~16,000 instructions a read, counted by callgrind). daphne
    gets the names it reads, read once through the proxy."""
    daphne_http.http = types.SimpleNamespace(
        Request=twisted_http.Request, HTTPFactory=twisted_http.HTTPFactory, H2_ENABLED=twisted_http.H2_ENABLED
    )


def hash_requests_in_c() -> None:
    """daphne keeps each request as a key of its connections dict (~13 look-ups a request) and
    hashes and compares it by identity in Python methods: object's own do the same, in C."""
    daphne_http.WebRequest.__hash__ = object.__hash__
    daphne_http.WebRequest.__eq__ = object.__eq__


def write_headers_at_once() -> None:
    """Twisted's HTTPChannel.writeHeaders hands the status line and the headers to the transport as
    a list of ~30 pieces, each checked to be bytes by a Python call (writeSequence) before they are
    buffered one by one. The same bytes joined are one piece, checked once; other header iterables
    than Headers (only for backwards compatibility, unused by daphne) go through Twisted's own."""
    writes_pieces = twisted_http.HTTPChannel.writeHeaders
    if getattr(writes_pieces, "__wrapped__", None) is not None:
        return

    @functools.wraps(writes_pieces)
    def write_headers(channel, version: bytes, code: bytes, reason: bytes, headers) -> None:
        if not isinstance(headers, twisted_headers.Headers):
            writes_pieces(channel, version, code, reason, headers)
            return
        lines = [version, b" ", code, b" ", reason, b"\r\n"]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                lines += (name, b": ", value, b"\r\n")
        lines.append(b"\r\n")
        channel.transport.write(b"".join(lines))

    twisted_http.HTTPChannel.writeHeaders = write_headers


def add_headers_without_calls() -> None:
    """Twisted's Headers.addRawHeader (~14 a request: the request's headers as they are parsed,
    the response's as daphne sets them) calls a function to replace line breaks in the value by
    spaces, and another for the name's canonical form. A value without a line break is the same
    after it, so only one with a line break goes through it; the name's form comes from the name
    encoder's own cache, as the encoder would give it, or from the encoder."""
    adds_with_calls = twisted_headers.Headers.addRawHeader
    if getattr(adds_with_calls, "__wrapped__", None) is not None:
        return
    sanitize = twisted_headers._sanitizeLinearWhitespace
    encoder = twisted_headers._nameEncoder
    canonical = encoder._canonicalHeaderCache

    @functools.wraps(adds_with_calls)
    def add_raw_header(headers, name: str | bytes, value: str | bytes) -> None:
        if isinstance(value, str):
            value = value.encode("utf8")
        # Bytes in bytes by their codes: a bytes needle (b"\n" in value) costs a TypeError raised and
        # cleared inside the interpreter, which first tries it as an int.
        if LINE_FEED in value or CARRIAGE_RETURN in value:
            value = sanitize(value)
        headers._rawHeaders.setdefault(canonical.get(name) or encoder.encode(name), []).append(value)

    twisted_headers.Headers.addRawHeader = add_raw_header


remember_content_types()
add_headers_without_calls()
skip_twisted_access_lines()
read_twisted_http_directly()
hash_requests_in_c()
write_headers_at_once()
memory.limit_arenas()  # before daphne's and the database's threads start


class DrainingServer(daphne_server.Server):
    def __init__(self, *args, grace: float, supervised: bool = False, **kwargs) -> None:
        super().__init__(*args, signal_handlers=False, **kwargs)
        self.grace = grace
        self.supervisor = os.getppid() if supervised else None
        self.ports: list = []
        self.draining: asyncio.Task | None = None
        self.recovering: asyncio.Task | None = None
        self.watching: asyncio.Task | None = None

    def listen_success(self, port) -> None:
        self.ports.append(port)
        super().listen_success(port)

    def started(self) -> None:
        from usage import recovery

        loop = asyncio.get_event_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.on_signal, signum)
        self.recovering = loop.create_task(recovery.keep_recovering())
        if self.supervisor is not None:
            self.watching = loop.create_task(self.watch_supervisor())

    async def watch_supervisor(self) -> None:
        while os.getppid() == self.supervisor:
            await asyncio.sleep(SUPERVISOR_CHECK_SECONDS)
        logger.warning("The supervisor (pid %d) is gone: draining", self.supervisor)
        self.on_signal(signal.SIGTERM)

    def on_signal(self, signum: int) -> None:
        if self.draining is not None:
            logger.warning("Second %s: stopping now", signal.Signals(signum).name)
            self.stop()
            return
        self.draining = asyncio.get_event_loop().create_task(self.drain(signum))

    async def drain(self, signum: int) -> None:
        from usage import live

        name = signal.Signals(signum).name
        logger.info("%s: no new connections; %d run(s) have %g s to finish", name, live.count(), self.grace)
        for port in self.ports:
            port.stopListening()
        interrupted = await live.drain(self.grace)
        if interrupted:
            logger.info("Interrupted %d run(s) at the end of the grace period; they are settled", interrupted)
        if self.recovering is not None:
            self.recovering.cancel()
        await asyncio.sleep(FLUSH_SECONDS)
        self.stop()


def save_file_providers() -> None:
    """The providers file's providers whose key is in the environment are saved at start-up, once:
    a request only reads configuration (providers.registry.ProviderRegistry.reload)."""
    from django.db import connections

    from providers.registry import registry

    if error := registry.reload():
        logger.error("%s (no provider from the providers file was set up)", error)
    connections.close_all()  # this thread serves no request


def serve(host: str, port: int, fd: int | None) -> None:
    """Serve on host:port, or, as a worker, on the listening socket `fd` it inherited."""
    from daphne.endpoints import build_endpoint_description_strings
    from django.conf import settings
    from twisted.internet import reactor

    from llmhub import warm
    from llmhub.sqlite import checkpoints

    checkpoints.start_for(settings.DATABASES["default"])  # before the app opens a connection
    from llmhub.asgi import application

    warm.before_serving()
    if fd is not None:
        endpoints = build_endpoint_description_strings(file_descriptor=fd)
    else:  # (a worker's supervisor did it once for all of them)
        save_file_providers()
        endpoints = build_endpoint_description_strings(host=host, port=port)
    server = DrainingServer(
        application,
        endpoints=endpoints,
        action_logger=None,  # LLMHub logs one line per request itself (ops/middleware.py)
        grace=settings.LLMHUB_SHUTDOWN_GRACE_SECONDS,
        supervised=fd is not None,
    )
    reactor.callWhenRunning(server.started)
    loop = event_loop.name(daphne_server.twisted_loop)  # the loop Twisted's reactor runs on
    if fd is None:
        logger.info(
            "LLMHub on http://%s:%d, %s event loop (SIGTERM drains for %g s)", host, port, loop, server.grace
        )
    else:
        logger.info("Worker %d serving, %s event loop", os.getpid(), loop)
    server.run()
