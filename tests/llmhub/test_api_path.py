"""/v1/ runs on its own, shorter middleware list (llmhub/api_handler.py): no session, cookie or user
lookup, no page headers; the pages keep theirs; the API's error bodies are as before. Requests go
through the ASGI application as the server runs it, in this process."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from asgiref.sync import async_to_sync, markcoroutinefunction
from channels.testing import HttpCommunicator
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections
from django.db.backends.signals import connection_created
from django.test import RequestFactory
from django.urls import get_resolver

from gateway import keys
from gateway.errors import JsonErrors
from llmhub.api_handler import MATCH_FIELDS, ApiHandler, fixed_routes
from llmhub.asgi import application
from tests.gateway.test_hot_path import hub as team_on_openai
from tests.gateway.test_hot_path import statements
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
HOST = (b"host", b"127.0.0.1")


async def call(path: str, method: str = "GET", headers=(), body: bytes = b"", app=application) -> dict:
    communicator = HttpCommunicator(app, method, path, body=body, headers=[HOST, *headers])
    answer = await communicator.get_response(timeout=10)
    await communicator.wait(timeout=10)  # what the request does after its answer (its log line) too
    answer["headers"] = [(name.decode().lower(), value.decode()) for name, value in answer["headers"]]
    return answer


def header(answer: dict, name: str) -> str | None:
    return next((value for found, value in answer["headers"] if found == name), None)


@pytest.fixture
def key(alpha):
    return keys.create(alpha, "browser")


async def test_a_signed_in_browsers_api_call_sets_no_cookie_and_loads_no_session_or_user(key, alice_client):
    session = alice_client.cookies["sessionid"].value
    cookies = (b"cookie", f"sessionid={session}; csrftoken=abc; messages=x".encode())
    with statements() as seen:
        answer = await call(
            "/v1/models", headers=[cookies, (b"authorization", f"Bearer {key.secret}".encode())]
        )
    assert answer["status"] == 200 and json.loads(answer["body"])["object"] == "list"
    assert header(answer, "set-cookie") is None and "cookie" not in (header(answer, "vary") or "").lower()
    assert not [sql for sql in seen if "django_session" in sql or "accounts_user" in sql], seen
    assert header(answer, "x-request-id") and header(answer, "content-length") == str(len(answer["body"]))
    assert header(answer, "x-content-type-options") == "nosniff"
    assert header(answer, "content-security-policy") is None and header(answer, "x-frame-options") is None


async def test_the_pages_keep_their_session_csrf_and_page_headers(alice):
    page = await call("/accounts/login/")
    assert page["status"] == 200 and "csrftoken=" in header(page, "set-cookie")
    assert "default-src 'self'" in header(page, "content-security-policy")
    assert header(page, "x-frame-options") == "DENY" and header(page, "x-request-id")
    form = (b"content-type", b"application/x-www-form-urlencoded")
    refused = await call("/accounts/login/", "POST", [form], b"username=a&password=b")
    assert refused["status"] == 403  # no CSRF token


def error(status: int, message: str, code: str, kind: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


async def test_the_apis_error_answers_are_json_as_before(alpha, settings):
    unknown = await call("/v1/nothing/here")
    assert unknown["status"] == 404
    assert json.loads(unknown["body"])["error"]["code"] == "unknown_url"
    assert json.loads(unknown["body"])["error"]["message"].startswith("Unknown API path /v1/nothing/here.")
    wrong_method = await call("/v1/chat/completions")
    assert wrong_method["status"] == 405
    assert json.loads(wrong_method["body"]) == error(
        405, "Use POST for /v1/chat/completions.", "method_not_allowed"
    )
    settings.LLMHUB_API_MAX_BODY_BYTES = 10
    big = await call("/v1/chat/completions", "POST", [(b"content-type", b"application/json")], b"{}" * 10)
    assert big["status"] == 400
    assert json.loads(big["body"]) == error(
        400, "The request body is over the limit of 10 bytes.", "request_too_large"
    )
    other_host = await call("/v1/models", headers=[(b"host", b"evil.example")])
    assert other_host["status"] == 400 and header(other_host, "content-type") == "application/json"
    assert json.loads(other_host["body"]) == error(
        400, "The request was refused: Bad Request.", "invalid_request"
    )


async def send_in_parts(messages: list[dict], key=None) -> list[dict]:
    """A POST to /v1/chat/completions whose body arrives in these ASGI messages; what was sent back."""
    headers = [HOST, (b"content-type", b"application/json")]
    if key is not None:
        headers.append((b"authorization", f"Bearer {key.secret}".encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    incoming, sent = list(messages), []
    answered = asyncio.Event()

    async def receive() -> dict:
        if incoming:
            return incoming.pop(0)
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await asyncio.wait_for(application(scope, receive, send), 10)
    return sent


async def test_a_body_sent_in_several_messages_is_read_whole(key):
    body = json.dumps({"model": "nowhere/none", "messages": [{"role": "user", "content": "hi"}]}).encode()
    parts = [body[:7], b"", body[7:30], body[30:]]
    messages = [{"type": "http.request", "body": part, "more_body": True} for part in parts]
    messages[-1]["more_body"] = False
    start, answer = await send_in_parts(messages, key)
    assert start["status"] == 400
    error_ = json.loads(answer["body"])["error"]
    assert error_["code"] == "model_not_found" and "nowhere/none" in error_["message"]


async def test_a_client_that_leaves_before_its_body_ends_is_not_answered():
    started = {"type": "http.request", "body": b'{"model": ', "more_body": True}
    assert await send_in_parts([started, {"type": "http.disconnect"}]) == []


async def test_the_answer_is_made_and_sent_in_the_requests_own_task(key):
    """Not in a task of its own beside the one listening for the client going away (Django's way:
    a task and an asyncio.wait more a request)."""
    headers = [HOST, (b"authorization", f"Bearer {key.secret}".encode())]
    scope = {"type": "http", "method": "GET", "path": "/v1/models", "headers": headers, "query_string": b""}
    scope |= {"client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000)}
    incoming, senders, answered = [{"type": "http.request", "body": b""}], [], asyncio.Event()

    async def receive() -> dict:
        if incoming:
            return incoming.pop()
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        senders.append((message["type"], asyncio.current_task()))
        if message["type"] == "http.response.body" and not message.get("more_body"):
            answered.set()

    await application(scope, receive, send)
    request = asyncio.current_task()
    assert senders == [("http.response.start", request), ("http.response.body", request)]


async def test_a_text_access_line_carries_only_its_request_id(key, caplog, settings):
    """The JSON line's fields (method, status, key...) are built only for JSON lines (ops.logs.structured):
    a text line is its message, which says them."""
    settings.LLMHUB_LOG_FORMAT = "text"
    with caplog.at_level(logging.INFO, logger="llmhub.requests"):
        answer = await call("/v1/models", headers=[(b"authorization", f"Bearer {key.secret}".encode())])
    [line] = [record for record in caplog.records if record.name == "llmhub.requests"]
    assert line.getMessage().startswith("GET /v1/models 200 ")
    assert line.request_id == header(answer, "x-request-id")
    assert not hasattr(line, "api_key") and not hasattr(line, "status")


async def test_a_refused_requests_warning_line_is_written_on_the_loop(caplog):
    """Django's `Method Not Allowed: /v1/...` line for a 4xx answer, as before, but written on the
    event loop (the test's thread), not through a thread hop; its request id on it."""
    with caplog.at_level(logging.WARNING, logger="django.request"):
        refused = await call("/v1/chat/completions")
    assert refused["status"] == 405
    [line] = [record for record in caplog.records if record.name == "django.request"]
    assert line.getMessage() == "Method Not Allowed: /v1/chat/completions" and line.status_code == 405
    assert line.levelno == logging.WARNING and line.thread == threading.get_ident()


class Exploding:
    """A middleware that fails: what an exception escaping any view or middleware looks like."""

    sync_capable, async_capable = False, True

    def __init__(self, get_response) -> None:
        markcoroutinefunction(self)

    async def __call__(self, request):
        raise RuntimeError("a bug")


async def test_an_exception_on_the_api_path_is_a_json_500(settings):
    settings.LLMHUB_API_MIDDLEWARE = [*settings.LLMHUB_API_MIDDLEWARE, f"{__name__}.Exploding"]
    failed = await call("/v1/models", app=JsonErrors(ApiHandler()))
    assert failed["status"] == 500 and header(failed, "content-type") == "application/json"
    assert json.loads(failed["body"]) == error(
        500, "The hub failed while answering; the error is logged.", "internal_error", "server_error"
    )


def test_a_middleware_that_would_hop_to_a_thread_is_refused(settings):
    settings.LLMHUB_API_MIDDLEWARE = [
        *settings.LLMHUB_API_MIDDLEWARE,
        "django.contrib.sessions.middleware.SessionMiddleware",
    ]
    with pytest.raises(ImproperlyConfigured, match="SessionMiddleware"):
        ApiHandler()


async def test_plain_http_to_an_https_only_hub_says_where_to_send_the_request(settings):
    """Django's https redirect (LLMHUB_HTTPS) is a page; on /v1/ it is a JSON 400 naming the https
    address: a client would re-send a redirected POST as a GET, or not follow it."""
    settings.SECURE_SSL_REDIRECT = True
    body = b'{"model": "gpt-4o-mini", "messages": []}'
    answer = await call("/v1/chat/completions", "POST", body=body, app=JsonErrors(ApiHandler()))
    assert answer["status"] == 400 and header(answer, "content-type") == "application/json"
    assert json.loads(answer["body"]) == error(
        400,
        "The hub does not redirect API requests: send this request to https://127.0.0.1/v1/chat/completions.",
        "wrong_address",
    )


# ---- request_started and request_finished: no thread hops, nothing left open


hub = team_on_openai  # the fixture: team Alpha on the fake OpenAI, with a budget; its API key


async def chat(
    secret: str, path: str = "/v1/chat/completions", sent: Callable | None = None, stream: bool = False
) -> int:
    """A request through the ASGI application, to its end (what it does after the answer included),
    as a server awaits it; `sent` is awaited with each message it sends. (HttpCommunicator stops
    database_sync_to_async closing connections.)"""
    wanted = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "Hi."}],
        "stream": stream,
    }
    body = json.dumps(wanted)
    headers = [HOST, (b"content-type", b"application/json"), (b"authorization", f"Bearer {secret}".encode())]
    scope = {"type": "http", "method": "GET" if path == "/v1/models" else "POST", "path": path}
    scope |= {
        "headers": headers,
        "query_string": b"",
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80),
    }
    incoming = [{"type": "http.request", "body": body.encode()}]
    statuses = []

    async def receive() -> dict:
        if incoming:
            return incoming.pop()
        await asyncio.Event().wait()  # connected until the application stops listening
        return {}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])
        if sent is not None:
            await sent(message)

    await application(scope, receive, send)
    return statuses[0]


@contextmanager
def threads_started() -> Iterator[list[str]]:
    """The names of the threads started meanwhile."""
    started: list[str] = []
    start = threading.Thread.start

    def noted(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    threading.Thread.start = noted
    try:
        yield started
    finally:
        threading.Thread.start = start


@contextmanager
def connections_opened() -> Iterator[list]:
    """The database connections opened meanwhile, by any thread."""
    opened = []

    def note(sender, connection, **kwargs) -> None:
        opened.append(connection)

    connection_created.connect(note)
    try:
        yield opened
    finally:
        connection_created.disconnect(note)


async def test_a_chat_completion_starts_no_thread_for_djangos_request_signals(hub):
    """Django's handler starts a thread a request (and another to join it) to send request_started
    and request_finished; the API's database work runs on the pooled threads, already started."""
    assert await chat(hub.secret) == 200
    with threads_started() as started:
        assert await chat(hub.secret) == 200
    assert [name for name in started if not name.startswith("asyncio_")] == []


class Noting(logging.Handler):
    def __init__(self, noted: list) -> None:
        super().__init__(logging.INFO)
        self.noted = noted

    def emit(self, record: logging.LogRecord) -> None:
        self.noted.append(record.name)


@pytest.mark.parametrize("stream", [False, True])
async def test_the_requests_and_the_runs_lines_are_written_once_the_answers_last_byte_is_sent(hub, stream):
    """The client waits for the answer, not for the lines describing it (llmhub/afterwards.py): they
    and their metrics come after its last byte (a stream's too), the run's usage row before it, as
    always."""
    noted: list = []

    async def sent(message: dict) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            noted.append(
                f"answered, usage rows: {await UsageRecord.objects.filter(api_key=hub.key).acount()}"
            )

    handler = Noting(noted)
    loggers = [logging.getLogger("llmhub.runs"), logging.getLogger("llmhub.requests")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        assert await chat(hub.secret, sent=sent, stream=stream) == 200
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
    # (A stream's access line is left when its answer begins, its run's line when the run ends.)
    assert noted[0] == "answered, usage rows: 1" and sorted(noted[1:]) == ["llmhub.requests", "llmhub.runs"]


@pytest.mark.parametrize("upstream", ["answers", "fails"])
async def test_every_connection_a_request_opens_is_closed_when_due(hub, fake_openai, monkeypatch, upstream):
    """A failing provider is noted, and GET /v1/models reads, on the request's own thread (a
    thread-sensitive sync_to_async): request_finished is sent there, as Django does, and closes its
    connection; the pooled threads' are closed by database_sync_to_async."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)  # LLMHUB_DB_CONN_MAX_AGE=0
    assert await chat(hub.secret) == 200  # (the server's first request checks the key file)
    if upstream == "fails":
        fake_openai.fail_next(500)
    with connections_opened() as opened:
        answered = await chat(hub.secret)
        listed = await chat(hub.secret, "/v1/models")
    assert answered == (200 if upstream == "answers" else 502) and listed == 200
    assert opened and [wrapper for wrapper in opened if wrapper.connection is not None] == []


def test_under_async_to_sync_the_callers_connection_is_closed_when_due(hub, fake_openai, monkeypatch):
    """Called from sync code, a thread-sensitive call runs on the caller's thread, whose connection
    outlives the request: Django's own way then, request_finished closing it when due."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)  # LLMHUB_DB_CONN_MAX_AGE=0
    assert async_to_sync(chat)(hub.secret) == 200  # (the server's first request checks the key file)
    fake_openai.fail_next(500)
    connection.close()  # reopened within the request, under CONN_MAX_AGE=0
    with connections_opened() as opened:
        assert async_to_sync(chat)(hub.secret) == 502
    ours = connections["default"]  # this thread's
    assert ours in opened and ours.connection is None


def test_the_apis_paths_are_matched_as_django_resolves_them():
    """The fixed /v1/ paths are looked up in a table, the others resolved: the same match either way
    (the view, its route for the metrics, the 404 of an unknown path)."""
    handler, factory = ApiHandler(), RequestFactory()
    fixed = ["/v1/models", "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages"]
    fixed += ["/v1/messages/count_tokens", "/v1/responses"]
    others = ["/v1/models/openai/gpt-4o", "/v1/responses/resp_1/input_items", "/v1/nothing", "/v1/models/"]
    for path in fixed + others:
        ours = handler.resolve_request(factory.get(path))
        djangos = get_resolver().resolve(path)
        assert {name: getattr(ours, name) for name in MATCH_FIELDS} == {
            name: getattr(djangos, name) for name in MATCH_FIELDS
        }, path
    assert sorted(fixed_routes(get_resolver())) == sorted(fixed)


async def test_the_common_middleware_refuses_user_agents_and_adds_www_as_django_does(settings):
    """CommonMiddleware's request checks read their settings through llmhub.conf: a changed
    setting is seen at the next request, the answers are Django's."""
    settings.ALLOWED_HOSTS = ["127.0.0.1", "www.127.0.0.1"]
    settings.DISALLOWED_USER_AGENTS = [re.compile(r"^BadBot")]
    refused = await call("/v1/models", headers=[(b"user-agent", b"BadBot/1.0")])
    assert refused["status"] == 403
    assert (await call("/v1/models", headers=[(b"user-agent", b"GoodBot/1.0")]))["status"] != 403
    settings.PREPEND_WWW = True
    moved = await call("/v1/models")
    moved = json.loads(moved["body"])["error"]  # the hub answers a redirect with where it would go
    assert moved["code"] == "wrong_address" and "http://www.127.0.0.1/v1/models" in moved["message"]
