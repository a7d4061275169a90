"""The legacy Completions API, mapped onto chat, driven by the official `openai` package."""

from __future__ import annotations

import uuid
from decimal import Decimal

import openai
import pytest

from gateway import keys
from usage.models import Budget, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hub(alpha, openai_and_anthropic):
    return keys.create(alpha, "old script")


@pytest.fixture
def client(hub, hub_url):
    return openai.OpenAI(base_url=f"{hub_url}/v1", api_key=hub.secret, max_retries=0, timeout=30)


def row_of(completion) -> UsageRecord:
    return UsageRecord.objects.get(run_id=str(uuid.UUID(completion.id.removeprefix("cmpl-"))))


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
def test_a_prompt_runs_as_chat_and_comes_back_as_text(client, hub, model, request):
    fake = request.getfixturevalue(f"fake_{model.partition('/')[0]}")
    answer = client.completions.create(model=model, prompt="Say hello.", max_tokens=50)
    assert answer.object == "text_completion" and answer.choices[0].text == fake.reply_text
    assert answer.choices[0].finish_reason == "stop" and answer.model == model
    row = row_of(answer)
    assert row.api_key == hub.key and row.output_tokens == answer.usage.completion_tokens > 0
    sent = fake.last_request.json["messages"]
    assert sent[-1]["role"] == "user" and "Say hello." in str(sent[-1]["content"])


def test_the_legacy_default_of_16_tokens_holds(client, fake_openai):
    client.completions.create(model="openai/gpt-4o-mini", prompt="Say hello.")
    assert fake_openai.last_request.json["max_tokens"] == 16


def test_a_stream_arrives_as_text_chunks_with_usage(client, hub, fake_openai):
    fake_openai.reply_text = " ".join(f"w{n}" for n in range(20))
    chunks = list(
        client.completions.create(
            model="openai/gpt-4o-mini",
            prompt="Count.",
            max_tokens=100,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == fake_openai.reply_text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == row_of(chunks[0]).output_tokens


def test_echo_puts_the_prompt_before_the_answer(client, fake_openai):
    answer = client.completions.create(model="openai/gpt-4o-mini", prompt="Once upon", echo=True)
    assert answer.choices[0].text == "Once upon" + fake_openai.reply_text


def test_what_chat_cannot_do_is_refused_by_name(client, fake_openai):
    for extra, named in (
        ({"suffix": "end"}, "suffix"),
        ({"best_of": 3}, "best_of"),
        ({"logprobs": 2}, "logprobs"),
        ({"prompt": ["one", "two"]}, "one prompt per request"),
        ({"prompt": [1, 2, 3]}, "token arrays"),
    ):
        arguments = {"model": "openai/gpt-4o-mini", "prompt": "Hi", **extra}
        with pytest.raises(openai.BadRequestError, match=named):
            client.completions.create(**arguments)
    assert not [r for r in fake_openai.requests if r.method == "POST"]


def test_a_budget_refusal_is_a_402(client, alpha, fake_openai):
    Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("0"))
    with pytest.raises(openai.APIStatusError) as refused:
        client.completions.create(model="openai/gpt-4o-mini", prompt="Hi")
    assert refused.value.status_code == 402 and "Monthly Alpha team budget" in refused.value.message
