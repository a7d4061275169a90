"""OpenAI specifics; what every adapter does is in test_conformance.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from providers.adapters.openai import OpenAIAdapter
from providers.base import Delta, Finished, GenerationRequest, Message
from providers.crypto import Secret
from providers.errors import ModelNotAvailable, RateLimited, UnexpectedResponse, UnsupportedRequest
from tests.conftest import GOOD_KEYS, adapter_for


def ask(model: str, **options) -> GenerationRequest:
    return GenerationRequest(
        model=model, messages=(Message("system", "Be brief."), Message("user", "Hi")), **options
    )


async def test_it_sends_the_key_as_a_bearer_token_and_the_organization(fake_openai):
    adapter = adapter_for(OpenAIAdapter, fake_openai)
    config = adapter.config
    with_org = OpenAIAdapter(
        type(config)(
            **{
                **config.__dict__,
                "credentials": {"api_key": Secret(GOOD_KEYS["openai"]), "organization_id": "org-42"},
            }
        )
    )
    await with_org.generate(ask("gpt-4o"))
    headers = fake_openai.last_request.headers
    assert headers["authorization"] == f"Bearer {GOOD_KEYS['openai']}"
    assert headers["openai-organization"] == "org-42"


async def test_it_sends_max_tokens_and_temperature_to_gpt_4o(fake_openai):
    await adapter_for(OpenAIAdapter, fake_openai).generate(ask("gpt-4o", max_tokens=50, temperature=0.2))
    body = fake_openai.last_request.json
    assert (body["max_tokens"], body["temperature"]) == (50, 0.2)
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


@pytest.mark.parametrize("model", ["o1", "o3-mini"])
async def test_it_sends_max_completion_tokens_to_the_o_series(fake_openai, model):
    response = await adapter_for(OpenAIAdapter, fake_openai).generate(
        ask(model, max_tokens=500, temperature=1)
    )
    body = fake_openai.last_request.json
    assert body["max_completion_tokens"] == 500
    assert "max_tokens" not in body and "temperature" not in body  # 1 is their default and only value
    assert response.content == fake_openai.reply_text


@pytest.mark.parametrize("model", ["o1", "o3-mini"])
async def test_the_o_series_refuses_temperature_by_name_as_openai_does(fake_openai, model):
    with pytest.raises(UnsupportedRequest) as refused:
        await adapter_for(OpenAIAdapter, fake_openai).generate(ask(model, temperature=0.2, top_p=0.5))
    assert refused.value.user_message.startswith(f"openai/{model} does not accept temperature or top_p.")
    assert not fake_openai.requests  # refused before anything was sent


async def test_it_asks_the_stream_for_usage(fake_openai):
    events = [e async for e in adapter_for(OpenAIAdapter, fake_openai).stream(ask("gpt-4o", stream=True))]
    assert fake_openai.last_request.json["stream_options"] == {"include_usage": True}
    assert isinstance(events[0], Delta) and isinstance(events[-1], Finished)


async def test_it_reads_retry_after_as_an_http_date(fake_openai):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    fake_openai.fail_next(
        429,
        body={"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}},
        headers={"retry-after": when},
    )
    with pytest.raises(RateLimited) as caught:
        await adapter_for(OpenAIAdapter, fake_openai).generate(ask("gpt-4o"))
    assert 27 <= caught.value.retry_after <= 30
    assert caught.value.retrying_message(30) == "OpenAI rate limit hit. Retrying in 30 seconds..."


@pytest.mark.parametrize(("reset", "seconds"), [("1m30s", 90), ("20ms", 0.02), ("6m0s", 360), ("1.5s", 1.5)])
async def test_it_reads_openais_reset_durations_when_there_is_no_retry_after(fake_openai, reset, seconds):
    fake_openai.fail_next(429, headers={"x-ratelimit-reset-requests": reset})
    with pytest.raises(RateLimited) as caught:
        await adapter_for(OpenAIAdapter, fake_openai).generate(ask("gpt-4o"))
    assert caught.value.retry_after == pytest.approx(seconds)


async def test_a_rate_limit_without_any_hint_has_no_wait(fake_openai):
    fake_openai.fail_next(429)
    with pytest.raises(RateLimited) as caught:
        await adapter_for(OpenAIAdapter, fake_openai).generate(ask("gpt-4o"))
    assert caught.value.retry_after is None
    assert caught.value.user_message == "OpenAI rate limit hit. Try again in a moment."


async def test_it_names_the_missing_model(fake_openai):
    with pytest.raises(ModelNotAvailable) as caught:
        await adapter_for(OpenAIAdapter, fake_openai).generate(ask("gpt-5-turbo-ultra"))
    assert (
        caught.value.user_message == "gpt-5-turbo-ultra is unavailable right now. Pick another OpenAI model."
    )


async def test_it_passes_on_the_providers_reason_for_a_bad_request(fake_openai):
    fake_openai.fail_next(
        400,
        body={
            "error": {
                "message": "'messages' must contain the word 'json'",
                "type": "invalid_request_error",
                "code": None,
            }
        },
    )
    with pytest.raises(UnexpectedResponse) as caught:
        await adapter_for(OpenAIAdapter, fake_openai).generate(ask("gpt-4o"))
    assert not caught.value.retryable
    assert (
        caught.value.user_message
        == "OpenAI rejected the request (HTTP 400): 'messages' must contain the word 'json'"
    )


async def test_malformed_stream_data_is_an_unexpected_response(fake_openai):
    fake_openai.reply_raw_next(
        b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\ndata: {not json\n\n',
        content_type="text/event-stream",
    )
    seen = []
    with pytest.raises(UnexpectedResponse, match="OpenAI"):
        async for event in adapter_for(OpenAIAdapter, fake_openai).stream(ask("gpt-4o", stream=True)):
            seen.append(event)
    assert seen == [Delta("Hi")]


async def test_an_error_inside_a_stream_is_mapped(fake_openai):
    fake_openai.reply_raw_next(
        b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n',
        content_type="text/event-stream",
    )
    with pytest.raises(UnexpectedResponse) as caught:
        async for _ in adapter_for(OpenAIAdapter, fake_openai).stream(ask("gpt-4o", stream=True)):
            pass
    assert caught.value.retryable


async def test_a_keyless_compatible_server_gets_no_authorization_header(fake_openai):
    fake_openai.api_keys.add("")
    adapter = adapter_for(OpenAIAdapter, fake_openai, key="")
    await adapter.validate_credentials(adapter.config)
    assert "authorization" not in fake_openai.last_request.headers
