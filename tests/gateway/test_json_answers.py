"""The API's answers are written by orjson (gateway.openai_response.json_bytes): compact JSON in
UTF-8, with the values Django's encoder would have written."""

from __future__ import annotations

import datetime
import json
import uuid
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.utils.translation import gettext_lazy

from gateway import anthropic_response, keys
from gateway.openai_response import ChunkWriter, json_bytes, json_response
from gateway.responses_api import StreamWriter
from providers.base import Delta, ToolCallDelta


@pytest.mark.django_db(transaction=True)
def test_an_answer_is_compact_json_in_utf8(hub_url):
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(
        f"{hub_url}/v1/chat/completions", json=body, headers={"authorization": "Bearer llmh-wrong"}
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.content.startswith(b'{"error":{"message":"Incorrect or revoked API key.')
    assert "under Settings → API keys." in response.content.decode("utf-8")  # not \u2192
    assert response.headers["content-length"] == str(len(response.content))


@pytest.mark.django_db(transaction=True)
def test_an_anthropic_answer_is_compact_json_in_utf8(hub_url):
    body = {"model": "openai/gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{hub_url}/v1/messages", json=body, headers={"x-api-key": "llmh-wrong"})
    assert response.status_code == 401
    assert response.content.startswith(b'{"type":"error","error":{"type":"authentication_error",')
    assert "under Settings → API keys." in response.content.decode("utf-8")


def test_an_anthropic_event_is_compact_json_in_utf8():
    written = anthropic_response.event("content_block_delta", {"index": 0, "delta": {"text": "Zürich"}})
    assert (
        written
        == 'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"text":"Zürich"}}\n\n'.encode()
    )


@pytest.mark.django_db(transaction=True)
def test_the_model_list_is_compact_json(hub_url, alpha):
    key = keys.create(alpha, "a tool")
    response = httpx.get(f"{hub_url}/v1/models", headers={"authorization": f"Bearer {key.secret}"})
    assert response.status_code == 200
    assert response.content.startswith(b'{"object":"list","data":[')


def test_a_responses_event_is_compact_json_in_utf8():
    writer = StreamWriter(SimpleNamespace(), asked=None)
    written = writer.event("response.output_text.delta", delta="Zürich")
    expected = '{"type":"response.output_text.delta","sequence_number":0,"delta":"Zürich"}'
    assert written == f"event: response.output_text.delta\ndata: {expected}\n\n".encode()


@pytest.mark.django_db(transaction=True)
def test_a_legacy_completions_chunk_is_compact_json(hub_url, alpha, openai_and_anthropic):
    key = keys.create(alpha, "old script")
    body = {"model": "openai/gpt-4o-mini", "prompt": "hi", "max_tokens": 8, "stream": True}
    headers = {"authorization": f"Bearer {key.secret}"}
    response = httpx.post(f"{hub_url}/v1/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 200
    assert response.content.startswith(b'data: {"id":"cmpl-')


def test_a_streamed_chunk_is_compact_json_in_utf8():
    run = SimpleNamespace(uuid=uuid.UUID(int=7), answer=None, output="", finish_reason="tool_calls")
    writer = ChunkWriter(run, "openai/gpt-4o-mini", include_usage=False)
    chunk = writer.event(ToolCallDelta(0, "call_1", "weather", '{"city": "Zürich"}'))
    assert chunk.startswith(b'data: {"id":"chatcmpl-00000000000000000000000000000007","object":')
    assert '"arguments":"{\\"city\\": \\"Zürich\\"}"}}]},' in chunk.decode("utf-8")  # not \u00fc
    # A plain text delta is written as before: its text ASCII, escaped.
    assert b'"delta":{"content":"Z\\u00fcrich"}' in writer.event(Delta("Zürich"))


@pytest.mark.parametrize(
    "value",
    [
        {"seed": 2**64, "low": -(2**63) - 1},  # beyond orjson's 64 bits: Django's encoder writes them
        {"price": Decimal("0.0000015"), "at": datetime.datetime(2026, 12, 4, 5, 6, 7, 891234, datetime.UTC)},
        {"day": datetime.date(2026, 12, 4), "id": uuid.UUID(int=7), "text": gettext_lazy("Cancel")},
        {1: "a key that is not text", None: True},
        {"lone": "\ud800", "pair": "😀é", "list": (1, 2.5, 1e-7, 1e22, -0.0)},
    ],
)
def test_an_answer_holds_the_values_djangos_encoder_writes(value):
    assert json.loads(json_bytes(value)) == json.loads(DjangoJSONEncoder().encode(value))


def test_what_orjson_refuses_is_written_compact_too():
    """Django's encoder writes what orjson refuses, with the same separators: a stream's chunks are
    put together from pieces of that output."""
    assert (
        json_bytes({"seed": 2**64, "list": [1, 2], "n": None})
        == b'{"seed":18446744073709551616,"list":[1,2],"n":null}'
    )
    assert json_bytes({1: "a", "b": [True]}) == b'{"1":"a","b":[true]}'


def test_an_answer_has_the_headers_of_djangos_response_in_the_same_order():
    """json_response's answer looks headers up in its own dict (no KeyError for a missing one):
    the headers, their order and Django's look-ups stay those of HttpResponse(content_type=...)."""
    given = {"Retry-After": "3", "x-ratelimit-remaining-requests": "0"}
    ours = json_response({"error": "slow down"}, status=429, headers=given)
    django = HttpResponse(
        json_bytes({"error": "slow down"}), content_type="application/json", status=429, headers=given
    )
    assert list(ours.items()) == list(django.items())
    assert (ours.status_code, ours.content, ours.charset) == (
        django.status_code,
        django.content,
        django.charset,
    )
    for name in ("content-type", "CONTENT-TYPE", "retry-after", "Content-Length", "X-Content-Type-Options"):
        assert (name in ours.headers, ours.has_header(name)) == (
            name in django.headers,
            django.has_header(name),
        )
    ours.headers.setdefault("X-Content-Type-Options", "nosniff")
    ours.headers.setdefault("Retry-After", "9")
    assert ours.headers["x-content-type-options"] == "nosniff" and ours["Retry-After"] == "3"
