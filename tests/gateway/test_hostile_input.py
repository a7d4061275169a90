"""Hostile request bodies at the API: each is an OpenAI-shaped 400 (never an HTML 500), and text that
looks like a tokenizer's special token is just text."""

from __future__ import annotations

import httpx
import pytest

from gateway import keys
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage.models import FallbackPolicy, Run

pytestmark = pytest.mark.django_db(transaction=True)
HEAD = b'{"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": '


@pytest.fixture
def headers(alpha, fake_openai):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    FallbackPolicy.objects.create(team=alpha, enabled=False, retry_count=0)
    return {"authorization": f"Bearer {keys.create(alpha, 'ci').secret}", "content-type": "application/json"}


def post(hub_url: str, headers: dict, content) -> httpx.Response:
    return httpx.post(f"{hub_url}/v1/chat/completions", content=content, headers=headers, timeout=60)


def assert_openai_400(response: httpx.Response, says: str) -> None:
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert says in error["message"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (HEAD + b'"\\ud800 alone"}]}', "surrogate"),
        (HEAD + b'"hi"}], "max_tokens": 1' + b"0" * 5000 + b"}", "too long"),
        (HEAD + b'"a\\u0000b"}]}', "NUL"),
        (b'{"model": "openai/gpt-4o-mini", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "deep"),
        (HEAD + b'"hi"}], "temperature": NaN}', "NaN"),
        (HEAD + b'"hi"}], "max_tokens": 1e400}', "too large"),
        (HEAD + b'"hi"}], "metadata": {"x": -1e999}}', "too large"),
    ],
    ids=[
        "lone-surrogate",
        "5000-digit-integer",
        "nul",
        "100k-deep-nesting",
        "nan",
        "overflow",
        "overflow-deep",
    ],
)
def test_a_hostile_body_is_an_openai_shaped_400(hub_url, headers, body, says):
    assert_openai_400(post(hub_url, headers, body), says)
    assert not Run.objects.exists()


def test_a_nul_in_the_model_name_is_a_400(hub_url, headers):
    body = b'{"model": "openai/gpt\\u0000", "messages": [{"role": "user", "content": "hi"}]}'
    assert_openai_400(post(hub_url, headers, body), "NUL")


def test_a_chunked_body_over_the_limit_is_refused_without_a_content_length(hub_url, headers):
    def chunks():  # a generator body goes out chunked, with no content-length
        yield HEAD + b'"'
        for _ in range(9):
            yield b"x" * (1024 * 1024)
        yield b'"}]}'

    assert_openai_400(post(hub_url, headers, chunks()), "over the limit")


def test_a_chunked_body_within_the_limit_is_answered(hub_url, headers, fake_openai):
    def chunks():
        yield HEAD
        yield b'"Say hello."}]}'

    response = post(hub_url, headers, chunks())
    assert response.status_code == 200, response.text[:300]
    assert response.json()["choices"][0]["message"]["content"] == fake_openai.reply_text


def test_special_tokens_anywhere_in_a_prompt_are_counted_as_text(hub_url, headers):
    body = HEAD + b'"Explain <|endoftext|> and <|im_start|> and <|fim_prefix|>."}]}'
    response = post(hub_url, headers, body)
    assert response.status_code == 200, response.text[:300]
    assert Run.objects.get().estimated_input_tokens > 10
