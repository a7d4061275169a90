"""Prompt caching through the hub: cache_control breakpoints from /v1/messages reach an Anthropic
provider where Anthropic takes them, cache writes and reads are charged at their own prices, the
hold covers a prompt written to the cache, and other providers never see the hint."""

from __future__ import annotations

import json
import uuid
from decimal import ROUND_CEILING, Decimal

import anthropic
import openai
import pytest

from gateway import keys
from usage.models import Budget, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
HAIKU = "anthropic/claude-haiku-4-5"
# claude-haiku-4-5 per 1M tokens: input, output, cache read, cache write (5 minutes).
IN, OUT, READ, WRITE = Decimal("1"), Decimal("5"), Decimal("0.10"), Decimal("1.25")
EPHEMERAL = {"type": "ephemeral"}
SYSTEM = [
    {"type": "text", "text": "You are a coding agent. " * 40},
    # Past claude-haiku-4-5's shortest cacheable prefix (4,096 tokens): shorter ones are not cached.
    {"type": "text", "text": "The repository is LLMHub. " * 800, "cache_control": EPHEMERAL},
]
TOOL = {
    "name": "read_file",
    "description": "Read a file of the repository.",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    "cache_control": EPHEMERAL,
}
TURN = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Here is the README. " * 30},
            {"type": "text", "text": "Summarise it.", "cache_control": EPHEMERAL},
        ],
    }
]


@pytest.fixture
def hub(alpha, openai_and_anthropic):
    return keys.create(alpha, "claude code")


def client_for(key, hub_url) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=hub_url, api_key=key.secret, max_retries=0, timeout=30)


def row_of(message) -> UsageRecord:
    return UsageRecord.objects.get(run_id=str(uuid.UUID(message.id.removeprefix("msg_"))))


def ask(client, model: str = HAIKU, **given):
    return client.messages.create(
        **{"model": model, "max_tokens": 64, "system": SYSTEM, "tools": [TOOL], "messages": TURN, **given}
    )


def test_the_first_turn_writes_the_cache_and_the_second_reads_it_at_their_prices(
    hub, hub_url, fake_anthropic
):
    client = client_for(hub, hub_url)
    first = ask(client)
    sent = fake_anthropic.last_request.json
    assert sent["system"] == SYSTEM  # as blocks, the breakpoint on the block the client marked
    assert sent["tools"][0]["cache_control"] == EPHEMERAL
    assert sent["messages"][0]["content"][-1] == TURN[0]["content"][-1]
    assert "cache_control" not in sent["messages"][0]["content"][0]
    written = first.usage.cache_creation_input_tokens
    assert written > 4096 and first.usage.cache_read_input_tokens == 0
    row = row_of(first)
    assert (row.cache_write_tokens, row.cache_read_tokens) == (written, 0)
    plain = row.input_tokens - written
    assert row.cost_usd == (IN * plain + WRITE * written + OUT * row.output_tokens) / 1_000_000

    second = ask(client)
    assert second.usage.cache_read_input_tokens == written and second.usage.cache_creation_input_tokens == 0
    row = row_of(second)
    assert (row.cache_read_tokens, row.cache_write_tokens) == (written, 0)
    plain = row.input_tokens - written
    assert row.cost_usd == (IN * plain + READ * written + OUT * row.output_tokens) / 1_000_000
    assert row.cost_usd < row_of(first).cost_usd


def test_a_stream_reports_the_cache_in_message_start(hub, hub_url):
    client = client_for(hub, hub_url)
    ask(client)
    with client.messages.stream(model=HAIKU, max_tokens=64, system=SYSTEM, tools=[TOOL], messages=TURN) as s:
        final = s.get_final_message()
    assert final.usage.cache_read_input_tokens > 4096
    assert row_of(final).cache_read_tokens == final.usage.cache_read_input_tokens


def test_breakpoints_on_a_tool_result_and_a_tool_call_are_sent_on(hub, hub_url, fake_anthropic):
    call = {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "README.md"}}
    result = {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": "LLMHub",
        "cache_control": EPHEMERAL,
    }
    turns = [
        {"role": "user", "content": "Read the README."},
        {"role": "assistant", "content": [{**call, "cache_control": EPHEMERAL}]},
        {"role": "user", "content": [result]},
    ]
    client_for(hub, hub_url).messages.create(model=HAIKU, max_tokens=64, tools=[TOOL], messages=turns)
    sent = fake_anthropic.last_request.json["messages"]
    assert sent[1]["content"] == [{**call, "cache_control": EPHEMERAL}]
    assert sent[2]["content"] == [result]


def test_more_than_four_breakpoints_are_refused_as_anthropic_refuses_them(hub, hub_url, fake_anthropic):
    many = [{"type": "text", "text": f"Rule {n}.", "cache_control": EPHEMERAL} for n in range(3)]
    with pytest.raises(anthropic.BadRequestError) as refused:
        ask(client_for(hub, hub_url), system=many)  # 3 + the tool's + the turn's
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert refused.value.body["error"]["message"] == (
        "A maximum of 4 blocks with cache_control may be provided. Found 5."
    )
    assert not [r for r in fake_anthropic.requests if r.method == "POST"] and not Run.objects.exists()


def test_a_breakpoint_that_is_not_anthropics_is_refused_by_name(hub, hub_url):
    turn = [
        {"role": "user", "content": [{"type": "text", "text": "Hi.", "cache_control": {"type": "forever"}}]}
    ]
    with pytest.raises(anthropic.BadRequestError) as refused:
        client_for(hub, hub_url).messages.create(model=HAIKU, max_tokens=64, messages=turn)
    message = refused.value.body["error"]["message"]
    assert message.startswith("messages[0].content[0].cache_control") and "ephemeral" in message


def test_the_one_hour_cache_is_sent_as_the_five_minute_one_and_charged_so(hub, hub_url, fake_anthropic):
    hour = {"type": "ephemeral", "ttl": "1h"}
    turn = [{"role": "user", "content": [{"type": "text", "text": "Hi.", "cache_control": hour}]}]
    answer = client_for(hub, hub_url).messages.create(model=HAIKU, max_tokens=64, messages=turn)
    assert answer.content[0].text
    sent = fake_anthropic.last_request.json["messages"][0]["content"][0]
    assert sent["cache_control"] == {"type": "ephemeral"}  # never a write priced above what is charged


def test_on_openai_the_breakpoints_are_left_out_and_the_prompt_is_whole(hub, hub_url, fake_openai):
    answer = ask(client_for(hub, hub_url), model="openai/gpt-4o-mini")
    assert answer.content and row_of(answer).cost_usd > 0
    sent = fake_openai.last_request.json
    assert "cache" not in json.dumps(sent)  # neither cache_control nor the hub's own field
    assert [m["content"] for m in sent["messages"] if m["role"] == "system"] == [b["text"] for b in SYSTEM]
    assert "Summarise it." in json.dumps(sent["messages"][-1])
    assert row_of(answer).cache_write_tokens == 0


def test_the_hold_prices_the_prompt_as_a_cache_write_and_a_budget_at_it_is_enough(
    alpha, hub, hub_url, fake_anthropic
):
    first = ask(client_for(hub, hub_url))
    run = Run.objects.get(uuid=uuid.UUID(first.id.removeprefix("msg_")))
    hold = (WRITE * run.estimated_input_tokens + OUT * run.max_tokens) / 1_000_000
    assert run.max_cost_usd == hold  # every prompt token at the write price, not at the input price
    assert row_of(first).cost_usd <= hold
    bound = hold.quantize(Decimal("0.000001"), ROUND_CEILING)  # the budget's own precision

    short = keys.create(alpha, "one micro-dollar short")
    Budget.objects.create(team=alpha, api_key=short.key, monthly_limit_usd=bound - Decimal("0.000001"))
    with pytest.raises(anthropic.APIStatusError) as refused:
        ask(client_for(short, hub_url))
    assert refused.value.status_code == 402

    exact = keys.create(alpha, "exactly enough")
    Budget.objects.create(team=alpha, api_key=exact.key, monthly_limit_usd=bound)
    fake_anthropic.prompt_cache.clear()  # this one writes the cache again: the dearest prompt
    answer = ask(client_for(exact, hub_url))
    row = row_of(answer)
    assert row.cache_write_tokens == answer.usage.cache_creation_input_tokens > 4096
    assert row.cost_usd <= bound


def test_chat_completions_carry_a_parts_breakpoint_to_anthropic(hub, hub_url, fake_anthropic):
    client = openai.OpenAI(base_url=f"{hub_url}/v1", api_key=hub.secret, max_retries=0, timeout=30)
    system = [{"type": "text", "text": "You are a coding agent. " * 900, "cache_control": EPHEMERAL}]
    ask = [*TURN[0]["content"][:1], {"type": "text", "text": "Summarise it.", "cache_control": EPHEMERAL}]
    messages = [{"role": "system", "content": system}, {"role": "user", "content": ask}]
    first = client.chat.completions.create(model=HAIKU, messages=messages, max_tokens=64)
    sent = fake_anthropic.last_request.json
    assert sent["system"] == [{**system[0]}]
    assert sent["messages"][0]["content"] == ask
    second = client.chat.completions.create(model=HAIKU, messages=messages, max_tokens=64)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached > 4096 and first.usage.prompt_tokens_details.cached_tokens == 0
    row = UsageRecord.objects.get(run_id=str(uuid.UUID(second.id.removeprefix("chatcmpl-"))))
    assert row.cache_read_tokens == cached


def test_a_prefix_too_short_to_cache_is_charged_as_input(hub, hub_url):
    client = client_for(hub, hub_url)
    short = [{"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL}]
    for _ in range(2):
        answer = ask(client, system=short, tools=[])
        assert (answer.usage.cache_creation_input_tokens, answer.usage.cache_read_input_tokens) == (0, 0)
    row = row_of(answer)
    assert row.cost_usd == (IN * row.input_tokens + OUT * row.output_tokens) / 1_000_000


def test_chat_completions_with_five_breakpoints_are_refused_for_anthropic_only(hub, hub_url, fake_anthropic):
    client = openai.OpenAI(base_url=f"{hub_url}/v1", api_key=hub.secret, max_retries=0, timeout=30)
    parts = [{"type": "text", "text": f"Part {n}.", "cache_control": EPHEMERAL} for n in range(5)]
    messages = [{"role": "user", "content": parts}]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=HAIKU, messages=messages, max_tokens=16)
    assert "more than 4 cache_control breakpoints" in refused.value.message
    assert not [r for r in fake_anthropic.requests if r.method == "POST"]
    answer = client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages, max_tokens=16)
    assert answer.choices[0].message.content
