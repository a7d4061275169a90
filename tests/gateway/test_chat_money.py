"""Money and names around the new request fields: cached input and reasoning priced as the price
library says, tools and images in the estimate, every choice charged; model lookup by id and by
bare name; legacy functions, several choices and logprobs answered as OpenAI answers them."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import httpx
import openai
import pytest
from genai_prices import Usage, calc_price

from accounts.models import Team
from providers.base import Message
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.gateway.conftest import data_uri
from usage import runs
from usage.models import Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [{"role": "user", "content": "Say hello."}]


def usage_row(completion) -> UsageRecord:
    return UsageRecord.objects.get(run_id=str(uuid.UUID(completion.id.removeprefix("chatcmpl-"))))


def list_price(row: UsageRecord, model: str, provider: str) -> Decimal:
    counted = Usage(
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cache_read_tokens=row.cache_read_tokens,
        cache_write_tokens=row.cache_write_tokens,
    )
    return Decimal(str(calc_price(counted, model, provider_id=provider).total_price))


def test_openai_cached_input_is_charged_at_the_cache_price(sdk, every_kind):
    every_kind["openai"].cached_tokens = 8
    answer = sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK)
    assert answer.usage.prompt_tokens_details.cached_tokens == 8
    row = usage_row(answer)
    assert row.cache_read_tokens == 8 and row.cache_write_tokens == 0
    assert row.cost_usd == list_price(row, "gpt-4o-mini", "openai")
    plain = row.price.input_per_1m * row.input_tokens + row.price.output_per_1m * row.output_tokens
    assert row.cost_usd < plain / 1_000_000  # less than all of it as plain input


def test_anthropic_cache_reads_and_writes_have_their_own_prices(sdk, every_kind):
    every_kind["anthropic"].cache_read, every_kind["anthropic"].cache_write = 10, 5
    long = [{"role": "system", "content": "You answer briefly and politely. " * 10}, *ASK]
    answer = sdk.chat.completions.create(model="anthropic/claude-haiku-4-5", messages=long)
    row = usage_row(answer)
    assert (row.cache_read_tokens, row.cache_write_tokens) == (10, 5)
    assert row.input_tokens == answer.usage.prompt_tokens > 15  # cached tokens are prompt tokens too
    assert row.cost_usd == list_price(row, "claude-haiku-4-5", "anthropic")


def test_gemini_cached_content_and_thoughts_are_counted(sdk, every_kind):
    every_kind["gemini"].cached_tokens, every_kind["gemini"].thoughts_tokens = 3, 40
    answer = sdk.chat.completions.create(model="gemini/gemini-2.5-flash", messages=ASK)
    assert answer.usage.completion_tokens_details.reasoning_tokens == 40
    row = usage_row(answer)
    assert (row.cache_read_tokens, row.reasoning_tokens) == (3, 40)
    assert row.output_tokens == answer.usage.completion_tokens > 40  # reasoning is output
    assert row.cost_usd == list_price(row, "gemini-2.5-flash", "google")


def test_every_choice_is_reserved_and_charged(sdk, every_kind, alpha):
    answer = sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, n=3, max_tokens=40)
    assert [c.index for c in answer.choices] == [0, 1, 2]
    assert {c.message.content for c in answer.choices} == {every_kind["openai"].reply_text}
    run = Run.objects.get()
    one = runs.create_run(None, alpha, "openai/gpt-4o-mini", [Message("user", "Say hello.")], 40)
    assert run.max_cost_usd > 2 * one.max_cost_usd  # three answers' worth of output held
    row = usage_row(answer)
    assert row.output_tokens == answer.usage.completion_tokens and row.cost_usd == list_price(
        row, "gpt-4o-mini", "openai"
    )


def test_streamed_choices_keep_their_indices(sdk, every_kind):
    chunks = list(sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, n=2, stream=True))
    texts = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {0: every_kind["openai"].reply_text, 1: every_kind["openai"].reply_text}
    finishes = [(c.index, c.finish_reason) for chunk in chunks for c in chunk.choices if c.finish_reason]
    assert sorted(finishes) == [(0, "stop"), (1, "stop")]


def test_logprobs_come_back_as_openai_sends_them(sdk, every_kind):
    answer = sdk.chat.completions.create(
        model="openai/gpt-4o-mini", messages=ASK, logprobs=True, top_logprobs=2
    )
    tokens = [item.token for item in answer.choices[0].logprobs.content]
    assert "".join(tokens) == every_kind["openai"].reply_text
    assert every_kind["openai"].last_request.json["top_logprobs"] == 2


def test_tools_and_images_are_in_the_estimate(alpha, every_kind):
    ask = [Message("user", "What is the weather in Paris?")]
    tool = {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    plain = runs.create_run(None, alpha, "openai/gpt-4o", ask, 100)
    with_tools = runs.create_run(None, alpha, "openai/gpt-4o", ask, 100, options={"tools": [tool]})
    assert with_tools.estimated_input_tokens >= plain.estimated_input_tokens + len(json.dumps(tool)) // 4
    from providers.chat import ImagePart

    for model, detail, expected in [
        ("openai/gpt-4o", "high", 85 + 170),
        ("openai/gpt-4o", "low", 85),
        ("gemini/gemini-2.5-flash", "auto", 258),
        ("azure/mini", "low", 2833),  # a deployment's name hides its model: the costliest rule
        ("anthropic/claude-haiku-4-5", "auto", 3),
    ]:
        image = Message("user", (ImagePart(data_uri(64, 32), detail),))
        text_only = runs.create_run(None, alpha, model, [Message("user", "")], 100)
        pictured = runs.create_run(None, alpha, model, [image], 100)
        assert pictured.estimated_input_tokens - text_only.estimated_input_tokens == expected, model


def test_a_reasoning_model_refuses_temperature_as_openai_does(sdk, every_kind):
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="openai/o3-mini", messages=ASK, temperature=0.2)
    assert "openai/o3-mini does not accept temperature. Send" in refused.value.message
    assert refused.value.param == "temperature"
    assert not [r for r in every_kind["openai"].requests if r.method == "POST"]


def test_legacy_functions_are_answered_with_a_function_call(sdk, every_kind):
    functions = [
        {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    ]
    answer = sdk.chat.completions.create(
        model="anthropic/claude-haiku-4-5", messages=ASK, functions=functions
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "function_call" and choice.message.function_call.name == "get_weather"
    result = [
        *ASK,
        {"role": "assistant", "content": None, "function_call": choice.message.function_call.model_dump()},
        {"role": "function", "name": "get_weather", "content": "rainy"},
    ]
    again = sdk.chat.completions.create(
        model="anthropic/claude-haiku-4-5", messages=result, functions=functions
    )
    assert again.choices[0].message.content == "The tool answered: rainy"


def test_one_model_by_its_id_with_a_slash(sdk, every_kind, hub_url, api_key):
    assert sdk.models.retrieve("openai/gpt-4o-mini").id == "openai/gpt-4o-mini"
    assert sdk.models.retrieve("ollama/llama3.2:latest").owned_by == "team:Alpha"
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.models.retrieve("openai/gpt-9")
    assert "The model 'openai/gpt-9' does not exist" in missing.value.message
    response = httpx.get(f"{hub_url}/v1/models/openai/gpt-4o", headers={"authorization": "Bearer llmh-wrong"})
    assert response.status_code == 401


def test_a_bare_model_name_resolves_when_one_provider_offers_it(sdk, every_kind, alpha):
    answer = sdk.chat.completions.create(model="claude-haiku-4-5", messages=ASK)
    assert answer.model == "anthropic/claude-haiku-4-5"
    registry.save(
        "openai",
        {"api_key": GOOD_KEYS["openai"]},
        provider_id="openai-2",
        endpoint=every_kind["openai"].url,
        team=alpha,
    )
    with pytest.raises(openai.BadRequestError) as ambiguous:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=ASK)
    assert "name one of openai-2/gpt-4o-mini, openai/gpt-4o-mini" in ambiguous.value.message
    other = Team.objects.create(name="Other")
    registry.save(
        "anthropic",
        {"api_key": GOOD_KEYS["anthropic"]},
        provider_id="anthropic-other",
        endpoint=every_kind["anthropic"].url,
        team=other,
    )
    assert (
        sdk.chat.completions.create(model="claude-haiku-4-5", messages=ASK).model
        == "anthropic/claude-haiku-4-5"
    )
