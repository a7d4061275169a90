"""llmhub/server.py: what a server process changes in Twisted at import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# In a process of its own, as a server imports it (importing daphne installs Twisted's reactor).
CHECK = """
from email.message import EmailMessage
from llmhub import server
from twisted.web import http

def uncached(line):
    message = EmailMessage()
    message["content-type"] = line.decode("charmap")
    return message.get_content_type().encode("charmap")

lines = [
    b"application/json", b"Application/JSON; charset=utf-8", b"multipart/form-data; boundary=x",
    b"application/x-www-form-urlencoded", b"text/plain;charset=latin-1", b"nonsense", b"",
    b"\\xe9/\\xff",
]
for line in lines * 2:
    assert http._parseContentType(line) == uncached(line), line
info = http._parseContentType.cache_info()
assert (info.hits, info.misses) == (len(lines), len(lines)), info
server.remember_content_types()  # twice: not a cache around the cache
assert http._parseContentType.__wrapped__.__name__ == "_parseContentType"
print("ok")
"""


def assert_prints_ok(script: str) -> None:
    """Runs the script in a Python of its own (Twisted's and daphne's modules as a server loads
    them), which prints "ok" when its checks hold."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_twisted_reads_each_content_type_once_with_the_same_answers() -> None:
    assert_prints_ok(CHECK)


# Twisted's factory as daphne serves with it, its log opened as a listening port opens it.
ACCESS_LINES = """
from llmhub import server
from daphne.http_protocol import HTTPFactory
from twisted.logger import globalLogPublisher
from twisted.web import http
from twisted.web.test.requesthelper import DummyChannel

events = []
globalLogPublisher.addObserver(events.append)
factory = HTTPFactory(None)
factory.startFactory()
request = http.Request(DummyChannel())
request.method, request.uri, request.clientproto, request.code = b"POST", b"/v1/x", b"HTTP/1.1", 200
factory.log(request)
factory.stopFactory()
lines = [event for event in events if "/v1/x" in str(event.get("log_io", ""))]
assert not lines, lines
print("ok")
"""


def test_twisted_writes_no_access_line_of_its_own() -> None:
    assert_prints_ok(ACCESS_LINES)


# Every name daphne's WebRequest and HTTPFactory read of twisted.web.http, found in what
# read_twisted_http_directly() gives daphne in its place: a name a daphne upgrade starts reading
# would otherwise fail in the middle of a request.
NAMES_DAPHNE_READS = """
import ast, inspect
from llmhub import server
from daphne import http_protocol
from twisted.web import http

tree = ast.parse(inspect.getsource(http_protocol))
read = {
    node.attr
    for node in ast.walk(tree)
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "http"
}
assert read, "daphne reads nothing of twisted.web.http any more: the namespace can go"
given = vars(http_protocol.http)
assert read <= set(given), read - set(given)
assert all(given[name] is getattr(http, name) for name in read)
print("ok")
"""


def test_daphne_finds_every_name_it_reads_of_twisted_web_http() -> None:
    assert_prints_ok(NAMES_DAPHNE_READS)


# The status line and headers as Twisted's own HTTPChannel.writeHeaders sends them, and as the
# server's sends them: the same bytes, in one write.
HEADERS_WRITTEN = """
from twisted.internet.testing import StringTransport
from twisted.web import http
from twisted.web.http_headers import Headers

twisted_writes = http.HTTPChannel.writeHeaders
from llmhub import server
assert http.HTTPChannel.writeHeaders is not twisted_writes
server.write_headers_at_once()  # twice: not a wrapper around the wrapper
assert http.HTTPChannel.writeHeaders.__wrapped__ is twisted_writes

def written(write_headers, headers):
    channel = http.HTTPChannel()
    channel.makeConnection(StringTransport())
    channel.transport.clear()
    writes = []
    channel.transport.write = lambda data: (writes.append(data), StringTransport.write(channel.transport, data))
    write_headers(channel, b"HTTP/1.1", b"200", b"OK", headers)
    return channel.transport.value(), len(writes)

headers = Headers()
for name, value in [
    (b"content-type", b"application/json"), (b"x-request-id", b"abc"), (b"Set-Cookie", b"a=1"),
    (b"set-cookie", b"b=2"), (b"x-odd", b"line\\r\\nbreak"), ("x-text", "caf\\u00e9"), (b"x-empty", b""),
]:
    headers.addRawHeader(name, value)
expected, _ = written(twisted_writes, headers)
assert expected.startswith(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"), expected
assert written(http.HTTPChannel.writeHeaders, headers) == (expected, 1)
pairs = [(b"x-a", b"1"), (b"x-a", b"2")]  # Twisted's own, for what is not a Headers
assert written(http.HTTPChannel.writeHeaders, pairs)[0] == written(twisted_writes, pairs)[0]
print("ok")
"""


def test_the_status_line_and_headers_are_written_at_once_as_twisted_writes_them() -> None:
    assert_prints_ok(HEADERS_WRITTEN)


# Headers.addRawHeader as the server changes it, and Twisted's own: the same headers kept, the same
# names refused.
HEADERS_ADDED = """
from twisted.web import http_headers
from twisted.web.http_headers import Headers, InvalidHeaderName

twisted_adds = Headers.addRawHeader
from llmhub import server
assert Headers.addRawHeader is not twisted_adds
server.add_headers_without_calls()  # twice: not a wrapper around the wrapper
assert Headers.addRawHeader.__wrapped__ is twisted_adds

added = [
    (b"content-type", b"application/json"), (b"Content-Type", b"text/plain"), ("X-Text", "caf\\u00e9"),
    (b"x-lf", b"a\\nb"), (b"x-crlf", b"a\\r\\nb\\r\\n"), (b"x-cr", b"a\\rb"), (b"x-empty", b""), ("x-empty-text", ""),
    (b"www-authenticate", b"Bearer"), (b"x-vt", b"a\\x0bb\\x0cc"), (b"x-nul", b"a\\x00b"),
]
ours, theirs = Headers(), Headers()
for name, value in added * 2:
    ours.addRawHeader(name, value)
    twisted_adds(theirs, name, value)
assert list(ours.getAllRawHeaders()) == list(theirs.getAllRawHeaders()), list(ours.getAllRawHeaders())
for name in (b"bad name", "bad:name", b""):
    for add in (Headers.addRawHeader, twisted_adds):
        try:
            add(Headers(), name, b"x")
        except InvalidHeaderName:
            pass
        else:
            raise AssertionError(name)
print("ok")
"""


def test_headers_are_added_as_twisted_adds_them() -> None:
    assert_prints_ok(HEADERS_ADDED)
