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
