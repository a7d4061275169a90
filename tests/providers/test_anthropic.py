"""Anthropic specifics; what every adapter does is in test_conformance.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from providers.adapters.anthropic import AnthropicAdapter
from providers.base import Delta, Finished, GenerationRequest, Message
from providers.errors import QuotaExceeded, RateLimited, UnexpectedResponse
from tests.conftest import GOOD_KEYS, adapter_for


def ask(model: str = "claude-sonnet-4-5", **options) -> GenerationRequest:
    messages = (
        Message("system", "You are terse."),
        Message("user", "Hi"),
        Message("assistant", "Hello."),
        Message("user", "Again"),
    )
    return GenerationRequest(model=model, messages=messages, **options)


async def test_it_sends_the_key_and_api_version_headers(fake_anthropic):
    await adapter_for(AnthropicAdapter, fake_anthropic).generate(ask())
    headers = fake_anthropic.last_request.headers
    assert headers["x-api-key"] == GOOD_KEYS["anthropic"]
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers


async def test_it_sends_the_system_prompt_separately(fake_anthropic):
    await adapter_for(AnthropicAdapter, fake_anthropic).generate(ask())
    body = fake_anthropic.last_request.json
    assert body["system"] == "You are terse."
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]


async def test_it_always_sends_max_tokens_defaulting_to_the_models_limit(fake_anthropic):
    adapter = adapter_for(AnthropicAdapter, fake_anthropic)
    await adapter.generate(ask("claude-haiku-4-5"))
    assert fake_anthropic.last_request.json["max_tokens"] == 64000
    await adapter.generate(ask(max_tokens=123, temperature=0.5))
    assert fake_anthropic.last_request.json["max_tokens"] == 123
    assert fake_anthropic.last_request.json["temperature"] == 0.5


async def test_it_streams_input_tokens_from_message_start_and_output_from_message_delta(fake_anthropic):
    events = [e async for e in adapter_for(AnthropicAdapter, fake_anthropic).stream(ask(stream=True))]
    finished = events[-1]
    assert isinstance(finished, Finished)
    expected_output = fake_anthropic.count_tokens(fake_anthropic.reply_text)
    assert finished.usage.output == expected_output != 1  # message_start says 1; message_delta has the total
    assert finished.usage.input > 3
    assert fake_anthropic.last_request.json["stream"] is True


async def test_an_overloaded_error_mid_stream_is_retryable_and_keeps_what_came_before(fake_anthropic):
    fake_anthropic.error_mid_stream_next(after=2)
    seen = []
    with pytest.raises(UnexpectedResponse) as caught:
        async for event in adapter_for(AnthropicAdapter, fake_anthropic).stream(ask(stream=True)):
            seen.append(event)
    assert caught.value.status == 529 and caught.value.retryable
    assert len([e for e in seen if isinstance(e, Delta)]) == 2


async def test_it_reads_the_reset_time_when_there_is_no_retry_after(fake_anthropic):
    reset = (datetime.now(UTC) + timedelta(seconds=20)).isoformat().replace("+00:00", "Z")
    fake_anthropic.fail_next(
        429,
        body={"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}},
        headers={"anthropic-ratelimit-tokens-reset": reset},
    )
    with pytest.raises(RateLimited) as caught:
        await adapter_for(AnthropicAdapter, fake_anthropic).generate(ask())
    assert 17 <= caught.value.retry_after <= 20


async def test_a_low_credit_balance_is_a_quota_problem_with_a_clear_message(fake_anthropic):
    fake_anthropic.fail_next_as("quota_exceeded")
    with pytest.raises(QuotaExceeded) as caught:
        await adapter_for(AnthropicAdapter, fake_anthropic).generate(ask())
    assert caught.value.user_message == (
        "You've hit your Anthropic credit cap. Upgrade your plan or use another provider."
    )


async def test_a_bad_request_carries_anthropics_reason(fake_anthropic):
    fake_anthropic.fail_next(
        400,
        body={
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "messages: at least one message is required",
            },
        },
    )
    with pytest.raises(UnexpectedResponse) as caught:
        await adapter_for(AnthropicAdapter, fake_anthropic).generate(ask())
    assert "at least one message is required" in caught.value.user_message
    assert not caught.value.retryable
