"""llmhub.api_request.ApiRequest makes the request Django's ASGIRequest makes, for any scope."""

from __future__ import annotations

import io
import random

import pytest
from django.core.handlers.asgi import ASGIRequest
from django.test import override_settings

from llmhub.api_request import ApiRequest

HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"content-type", b"application/json; charset=utf-8"),
    (b"content-type", b"text/plain; charset=nonsense"),
    (b"content-type", b"Application/JSON;charset=UTF-8; q=1"),
    (b"content-length", b"110"),
    (b"authorization", b"Bearer llmh-secret"),
    (b"x-api-key", b"llmh-other"),
    (b"x_forwarded_for", b"10.0.0.9"),  # an underscore: left out
    (b"x-forwarded-for", b"10.0.0.1"),
    (b"accept", b"*/*"),
    (b"Accept-Encoding", b"gzip"),
    (b"x-caf\xe9", b"caf\xe9 \xff"),  # latin-1, both name and value
    (b"cookie", b""),
]


def _scope(chance: random.Random) -> dict:
    scope = {
        "type": "http",
        "method": chance.choice(["POST", "get", "DELETE"]),
        "path": chance.choice(["/v1/chat/completions", "/prefix/v1/models", "/v1/caf\xe9"]),
        "root_path": chance.choice(["", "", "/prefix"]),
        "query_string": chance.choice([b"", b"a=1&b=%C3%A9", "s=1"]),
        "headers": [chance.choice(HEADERS) for _ in range(chance.randrange(12))],
    }
    for name, value in (("client", ["127.0.0.1", 40000]), ("server", ["127.0.0.1", 8000])):
        if chance.random() < 0.8:
            scope[name] = value
    return scope


def test_it_makes_the_request_djangos_asgirequest_makes():
    chance = random.Random(16)
    for _ in range(500):
        scope, body = _scope(chance), io.BytesIO(b"{}")
        ours, djangos = ApiRequest(scope, body), ASGIRequest(scope, body)
        assert vars(ours) == vars(djangos)
        assert list(ours.META.items()) == list(djangos.META.items())


@override_settings(FORCE_SCRIPT_NAME="/hub")
def test_it_takes_the_script_name_django_takes():
    scope = {"type": "http", "method": "GET", "path": "/hub/v1/models", "headers": []}
    assert vars(ApiRequest(scope, None)) == vars(ASGIRequest(scope, None))


def test_it_refuses_the_content_type_django_refuses():
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/x",
        "headers": [(b"content-type", b"a/b; n*=bad''x")],
    }
    with pytest.raises(ValueError, match="Invalid encoding"):
        ASGIRequest(scope, None)
    with pytest.raises(ValueError, match="Invalid encoding"):
        ApiRequest(scope, None)


def _outcome(call):
    try:
        return call()
    except Exception as error:  # noqa: BLE001 - the outcome compared: a value or an error and its message
        return type(error), str(error)


@pytest.mark.parametrize(
    "hosts, debug, forwarded",
    [
        (["127.0.0.1", ".example.com"], False, False),
        ([], True, False),
        ([], False, False),
        (["hub.test"], False, True),
    ],
)
def test_it_checks_the_host_and_the_body_size_as_django_does(hosts, debug, forwarded):
    """get_host() and the body's size checks read their settings through llmhub.conf: the same
    answers and errors as Django's, and a changed setting is seen."""
    headers = [
        [(b"host", b"127.0.0.1:8000")],
        [(b"host", b"api.example.com")],
        [(b"host", b"evil.test")],
        [(b"host", b"bad host!")],
        [(b"host", b"localhost"), (b"x-forwarded-host", b"hub.test")],
        [(b"x-forwarded-host", b"hub.test")],
        [],
    ]
    with override_settings(
        ALLOWED_HOSTS=hosts, DEBUG=debug, USE_X_FORWARDED_HOST=forwarded, DATA_UPLOAD_MAX_MEMORY_SIZE=4
    ):
        for given in headers:
            for body in (b"{}", b"{}    "):
                scope = {"type": "http", "method": "POST", "path": "/v1/x", "headers": given}
                scope["server"] = ["hub.test", 443]
                ours, djangos = ApiRequest(scope, io.BytesIO(body)), ASGIRequest(scope, io.BytesIO(body))
                assert _outcome(ours.get_host) == _outcome(djangos.get_host)
                assert _outcome(lambda r=ours: r.body) == _outcome(lambda r=djangos: r.body)
