"""One suite every adapter passes against its fake server: validate, list, generate, stream,
each error mapping, timeouts and cancellation. A new dialect adds one line to DIALECTS."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from contextlib import aclosing

import pytest

from providers.adapters.anthropic import AnthropicAdapter
from providers.adapters.azure import AzureOpenAIAdapter
from providers.adapters.gemini import GeminiAdapter
from providers.adapters.ollama import OllamaAdapter
from providers.adapters.openai import OpenAIAdapter
from providers.base import (
    Delta,
    Finished,
    FinishReason,
    GenerationRequest,
    Message,
    Tool,
    ToolCall,
    ToolCallDelta,
)
from providers.errors import (
    InvalidCredentials,
    ModelNotAvailable,
    NetworkError,
    QuotaExceeded,
    RateLimited,
    StreamInterrupted,
    Timeout,
    UnexpectedResponse,
)
from tests.conftest import BAD_KEY, adapter_for

# dialect -> (adapter class, fake server fixture, a model of its catalogue)
DIALECTS = {
    "openai": (OpenAIAdapter, "fake_openai", "gpt-4o-mini"),
    "anthropic": (AnthropicAdapter, "fake_anthropic", "claude-haiku-4-5"),
    "gemini": (GeminiAdapter, "fake_gemini", "gemini-2.5-flash"),
    "ollama": (OllamaAdapter, "fake_ollama", "llama3.2:latest"),
    "azure": (AzureOpenAIAdapter, "fake_azure", "mini"),
}

FAILURES = {
    "invalid_key": InvalidCredentials,
    "forbidden": InvalidCredentials,
    "rate_limited": RateLimited,
    "model_not_found": ModelNotAvailable,
    "quota_exceeded": QuotaExceeded,
    "server_error": UnexpectedResponse,
    "overloaded": UnexpectedResponse,
}


@pytest.fixture(params=sorted(DIALECTS))
def case(request):
    adapter_class, fixture, model = DIALECTS[request.param]
    fake = request.getfixturevalue(fixture)
    return adapter_class, fake, model


def ask(model: str, text: str = "Say hello.", **options) -> GenerationRequest:
    return GenerationRequest(
        model=model,
        messages=(Message("system", "Be brief."), Message("user", text)),
        max_tokens=options.pop("max_tokens", 200),
        **options,
    )


async def test_it_validates_a_good_key(case):
    adapter_class, fake, _ = case
    adapter = adapter_for(adapter_class, fake)
    await adapter.validate_credentials(adapter.config)
    # The free model-list call: a GET, never a completion.
    assert [r.method for r in fake.requests] == ["GET"]
    assert "models" in fake.last_request.path or fake.last_request.path == "/api/tags"
    assert fake.last_request.body is None


async def test_it_refuses_a_bad_key_without_repeating_it(case):
    adapter_class, fake, _ = case
    adapter = adapter_for(adapter_class, fake, key=BAD_KEY)
    with pytest.raises(InvalidCredentials) as caught:
        await adapter.validate_credentials(adapter.config)
    error = caught.value
    assert (
        error.user_message == f"Your {adapter.display_name} API key is invalid. Please check and try again."
    )
    for text in (str(error), repr(error), error.detail, repr(error.args)):
        assert BAD_KEY not in text


async def test_it_validates_the_config_it_is_given(case):
    adapter_class, fake, _ = case
    adapter = adapter_for(adapter_class, fake, key=BAD_KEY)
    good = adapter_for(adapter_class, fake).config
    await adapter.validate_credentials(good)


async def test_it_lists_models_from_the_provider_and_its_catalogue(case):
    adapter_class, fake, model = case
    adapter = adapter_for(adapter_class, fake)
    listed = await adapter.fetch_model_ids()
    # Anthropic lists dated ids ("claude-haiku-4-5-20251001") for the aliases a catalogue uses.
    assert any(found == model or found.startswith(f"{model}-") for found in listed)
    assert model in [info.id for info in adapter.list_models()]
    assert adapter.default_model in [info.id for info in adapter.list_models()]


async def test_it_generates_text_with_usage(case):
    adapter_class, fake, model = case
    adapter = adapter_for(adapter_class, fake)
    response = await adapter.generate(ask(model))
    assert response.content == fake.reply_text
    assert response.usage.input > 0 and response.usage.output > 0
    assert response.finish_reason == FinishReason.STOP
    assert model in response.model


async def test_it_streams_deltas_then_one_final_usage(case):
    adapter_class, fake, model = case
    adapter = adapter_for(adapter_class, fake)
    events = [event async for event in adapter.stream(ask(model, stream=True))]
    deltas = [e for e in events if isinstance(e, Delta)]
    assert len(deltas) > 3
    assert "".join(d.text for d in deltas) == fake.reply_text
    assert isinstance(events[-1], Finished)
    assert sum(isinstance(e, Finished) for e in events) == 1
    assert events[-1].usage.output > 0 and events[-1].usage.input > 0
    assert events[-1].finish_reason == FinishReason.STOP


async def test_a_stream_read_to_its_end_leaves_no_generator_to_the_garbage_collector(case):
    """Every async generator under a stream is closed by its reader: asyncio closes one dropped
    unfinished in a task of its own, woken through the loop's self-pipe (a system call a request)."""
    adapter_class, fake, model = case
    adapter = adapter_for(adapter_class, fake)
    firstiter, finalizer = sys.get_asyncgen_hooks()
    dropped: list[str] = []

    def noted(generator) -> None:
        dropped.append(generator.__qualname__)
        finalizer(generator)

    sys.set_asyncgen_hooks(firstiter, noted)
    try:
        async with aclosing(adapter.events(ask(model, stream=True))) as events:
            assert isinstance([event async for event in events][-1], Finished)
        gc.collect()
    finally:
        sys.set_asyncgen_hooks(firstiter, finalizer)
    assert dropped == []


async def test_it_reports_a_length_stop(case):
    adapter_class, fake, model = case
    adapter = adapter_for(adapter_class, fake)
    response = await adapter.generate(ask(model, max_tokens=3))
    assert response.finish_reason == FinishReason.LENGTH


@pytest.mark.parametrize("failure", sorted(FAILURES))
async def test_it_maps_each_provider_failure_to_its_typed_error(case, failure):
    adapter_class, fake, model = case
    adapter = adapter_for(adapter_class, fake)
    fake.fail_next_as(failure)
    with pytest.raises(FAILURES[failure]) as caught:
        await adapter.generate(ask(model))
    assert adapter.display_name in caught.value.user_message
    if failure == "rate_limited":
        assert caught.value.retry_after == pytest.approx(7, abs=1)
    if failure in ("server_error", "overloaded", "rate_limited"):
        assert caught.value.retryable
    if failure in ("invalid_key", "quota_exceeded", "model_not_found"):
        assert not caught.value.retryable


@pytest.mark.parametrize("failure", ["rate_limited", "server_error"])
async def test_it_maps_failures_when_a_stream_is_refused(case, failure):
    adapter_class, fake, model = case
    adapter = adapter_for(adapter_class, fake)
    fake.fail_next_as(failure)
    with pytest.raises(FAILURES[failure]):
        async for _ in adapter.stream(ask(model, stream=True)):
            pass


async def test_it_times_out_validation_on_a_hanging_server(case):
    adapter_class, fake, _ = case
    adapter = adapter_for(adapter_class, fake, validation_timeout=0.5)
    fake.hang_next(10)
    started = time.monotonic()
    with pytest.raises(Timeout):
        await adapter.validate_credentials(adapter.config)
    assert time.monotonic() - started < 3


async def test_it_times_out_a_generation_that_never_answers(case):
    adapter_class, fake, model = case
    adapter = adapter_for(adapter_class, fake, request_timeout=0.5)
    fake.hang_next(10)
    with pytest.raises(Timeout):
        await adapter.generate(ask(model))


async def test_it_reports_an_unreachable_endpoint(case):
    adapter_class, fake, model = case
    fake.stop()  # nothing listens on the port any more
    adapter = adapter_for(adapter_class, fake)
    with pytest.raises(NetworkError) as caught:
        await adapter.generate(ask(model))
    # It names the address that refused, not the user's internet connection.
    assert caught.value.user_message == (
        f"Connection refused by {fake.url.rstrip('/')}. Is {adapter.display_name} running there?"
    )


async def test_it_never_finishes_a_stream_the_provider_cut_off(case):
    adapter_class, fake, model = case
    adapter = adapter_for(adapter_class, fake)
    fake.cut_next_stream(after=4)
    seen = []
    with pytest.raises(StreamInterrupted):
        async for event in adapter.stream(ask(model, stream=True)):
            seen.append(event)
    assert not any(isinstance(e, Finished) for e in seen)


async def test_it_closes_the_upstream_connection_when_a_stream_is_cancelled(case):
    adapter_class, fake, model = case
    adapter = adapter_for(adapter_class, fake)
    fake.reply_text = "word " * 400
    fake.chunk_delay = 0.02
    received = 0
    async with aclosing(adapter.stream(ask(model, stream=True))) as events:
        async for event in events:
            received += isinstance(event, Delta)
            if received == 3:
                break
    assert await asyncio.to_thread(fake.client_disconnected.wait, 5)
    assert fake.streams_completed == 0


async def test_a_cancelled_task_closes_the_upstream_connection(case):
    adapter_class, fake, model = case
    adapter = adapter_for(adapter_class, fake)
    fake.reply_text = "word " * 400
    fake.chunk_delay = 0.02
    first = asyncio.Event()

    async def consume():
        async for _ in adapter.stream(ask(model, stream=True)):
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(fake.client_disconnected.wait, 5)


WEATHER = Tool(
    "get_weather",
    "The weather in a city now.",
    {"type": "object", "properties": {"city": {"type": "string"}}},
)


async def test_it_streams_a_tool_call_then_takes_its_result(case):
    adapter_class, fake, model = case
    adapter = adapter_for(adapter_class, fake)
    events = [event async for event in adapter.stream(ask(model, "Weather in Paris?", tools=(WEATHER,)))]
    pieces = [e for e in events if isinstance(e, ToolCallDelta)]
    assert pieces[0].name == "get_weather" and pieces[0].id and {p.index for p in pieces} == {0}
    assert json.loads("".join(p.arguments for p in pieces)) == {"city": "Paris"}
    assert events[-1].finish_reason == FinishReason.TOOL_CALLS
    call = ToolCall(pieces[0].id, "get_weather", "".join(p.arguments for p in pieces))
    history = (
        Message("user", "Weather in Paris?"),
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", "sunny", tool_call_id=call.id),
    )
    answer = await adapter.generate(GenerationRequest(model, history, max_tokens=200, tools=(WEATHER,)))
    assert "sunny" in answer.content and answer.finish_reason == FinishReason.STOP


async def test_streams_one_after_another_share_one_connection(case):
    """Each stream is read to the body's end before its last event is handed on, so its connection
    goes back to the pool: no new TCP (and, against a real provider, TLS) handshake per request."""
    adapter_class, fake, model = case
    adapter = adapter_for(adapter_class, fake)
    for _ in range(4):
        events = [event async for event in adapter.stream(ask(model, stream=True))]
        assert isinstance(events[-1], Finished)
    assert fake.connections == 1
    # The fake counts a stream once its last write returns, which may be just after our read of it.
    deadline = time.monotonic() + 2
    while fake.streams_completed < 4 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert fake.streams_completed == 4
