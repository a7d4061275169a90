"""Anthropic's Messages API, driven by the official `anthropic` package against the live hub, on
OpenAI and Anthropic providers behind it: budgets, fallback and usage rows as for chat completions."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import anthropic
import httpx
import pytest

from accounts.models import Team
from audit.models import AuditEntry
from gateway import keys
from tests.fakes.server import sse
from tests.gateway.conftest import data_uri
from usage.models import Budget, FallbackPolicy, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
MODELS = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city now.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def hub(alpha, openai_and_anthropic):
    return keys.create(alpha, "claude code")


@pytest.fixture
def client(hub, hub_url):
    return anthropic.Anthropic(base_url=hub_url, api_key=hub.secret, max_retries=0, timeout=30)


def fake_for(model: str, request):
    return request.getfixturevalue(f"fake_{model.partition('/')[0]}")


def row_of(message) -> UsageRecord:
    return UsageRecord.objects.get(run_id=str(uuid.UUID(message.id.removeprefix("msg_"))))


@pytest.mark.parametrize("model", MODELS)
def test_a_message_comes_back_in_anthropics_shape_with_its_usage_recorded(client, hub, model, request):
    fake = fake_for(model, request)
    message = client.messages.create(
        model=model, max_tokens=100, system="Be brief.", messages=[{"role": "user", "content": "Say hello."}]
    )
    assert message.content[0].type == "text" and message.content[0].text == fake.reply_text
    assert message.stop_reason == "end_turn" and message.role == "assistant" and message.model == model
    row = row_of(message)
    assert row.api_key == hub.key and row.source == "api" and row.cost_usd > 0
    assert (row.input_tokens, row.output_tokens) == (message.usage.input_tokens, message.usage.output_tokens)
    assert "Be brief." in json.dumps(fake.last_request.json)  # the system prompt reached the provider


@pytest.mark.parametrize("model", MODELS)
def test_a_stream_follows_anthropics_event_sequence(client, hub, model, request):
    fake = fake_for(model, request)
    fake.reply_text = " ".join(f"w{n}" for n in range(20))
    with client.messages.stream(model=model, max_tokens=100, messages=ASK[:1]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[1] == "content_block_start"
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert kinds.count("content_block_delta") >= 20  # relayed piece by piece
    assert final.content[0].text == fake.reply_text and final.stop_reason == "end_turn"
    assert row_of(final).output_tokens == final.usage.output_tokens > 0


def test_the_raw_stream_carries_event_names_and_a_ping(hub, hub_url):
    body = {"model": "openai/gpt-4o-mini", "max_tokens": 50, "messages": ASK, "stream": True}
    response = httpx.post(f"{hub_url}/v1/messages", json=body, headers={"x-api-key": hub.secret}, timeout=30)
    names = [
        line.removeprefix("event: ") for line in response.text.splitlines() if line.startswith("event: ")
    ]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-1] == "message_stop" and response.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize("model", MODELS)
def test_a_tool_call_and_its_result_go_round(client, hub, model, request):
    first = client.messages.create(model=model, max_tokens=200, messages=ASK, tools=[WEATHER])
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"city": "Paris"} and call.id
    followup = [
        *ASK,
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": '{"sky": "sunny"}'}],
        },
    ]
    second = client.messages.create(model=model, max_tokens=200, messages=followup, tools=[WEATHER])
    assert "sunny" in second.content[0].text and second.stop_reason == "end_turn"
    sent = json.dumps(fake_for(model, request).last_request.json)
    assert "get_weather" in sent and "sunny" in sent and call.id in sent  # the result named its call
    assert UsageRecord.objects.filter(api_key=hub.key).count() == 2


@pytest.mark.parametrize("model", MODELS)
def test_a_streamed_tool_call_arrives_as_input_json_deltas(client, hub, model):
    with client.messages.stream(model=model, max_tokens=200, messages=ASK, tools=[WEATHER]) as stream:
        events = list(stream)
        final = stream.get_final_message()
    starts = [e.content_block for e in events if e.type == "content_block_start"]
    assert starts[-1].type == "tool_use" and starts[-1].name == "get_weather"
    assert any(e.type == "content_block_delta" and e.delta.type == "input_json_delta" for e in events)
    assert final.content[-1].input == {"city": "Paris"} and final.stop_reason == "tool_use"


@pytest.mark.parametrize("model", MODELS)
def test_a_stop_sequence_is_named_where_the_provider_says_which(client, hub, model, request):
    fake = fake_for(model, request)
    fake.reply_text = "One, two. END Three, four."
    stops = ["STOP", "END"]
    message = client.messages.create(model=model, max_tokens=100, messages=ASK, stop_sequences=stops)
    with client.messages.stream(model=model, max_tokens=100, messages=ASK, stop_sequences=stops) as stream:
        streamed = stream.get_final_message()
    assert message.content[0].text == streamed.content[0].text == "One, two. "
    # Anthropic says which sequence stopped it; OpenAI's finish_reason "stop" is the same for a stop
    # sequence and a natural end.
    expected = ("stop_sequence", "END") if model.startswith("anthropic/") else ("end_turn", None)
    assert (message.stop_reason, message.stop_sequence) == expected
    assert (streamed.stop_reason, streamed.stop_sequence) == expected
    assert "END" in json.dumps(fake.last_request.json)


def test_a_stop_sequence_the_request_did_not_give_is_not_passed_on(client, hub, fake_anthropic):
    start = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [],
    }
    start["usage"] = {"input_tokens": 9, "output_tokens": 1}
    text = {"type": "text_delta", "text": "One, two. "}
    claimed = {"stop_reason": "stop_sequence", "stop_sequence": "<script>" * 1000}
    fake_anthropic.stream_raw_next(
        [
            sse({"type": "message_start", "message": start}, event="message_start"),
            sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            sse({"type": "content_block_delta", "index": 0, "delta": text}),
            sse({"type": "content_block_stop", "index": 0}),
            sse({"type": "message_delta", "delta": claimed, "usage": {"output_tokens": 4}}),
            sse({"type": "message_stop"}),
        ]
    )
    message = client.messages.create(
        model="anthropic/claude-haiku-4-5", max_tokens=50, messages=ASK, stop_sequences=["END"]
    )
    assert message.content[0].text == "One, two. " and message.stop_sequence is None
    assert message.stop_reason == "end_turn" and "script" not in json.dumps(Run.objects.get().answer)


def test_an_image_block_reaches_the_provider(client, hub, fake_openai):
    image = {"type": "base64", "media_type": "image/png", "data": data_uri().partition(",")[2]}
    content = [{"type": "image", "source": image}, {"type": "text", "text": "What colour?"}]
    client.messages.create(
        model="openai/gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": content}]
    )
    parts = fake_openai.last_request.json["messages"][-1]["content"]
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_count_tokens_counts_without_a_run(client, hub):
    counted = client.messages.count_tokens(model="openai/gpt-4o-mini", system="Be brief.", messages=ASK)
    longer = client.messages.count_tokens(model="openai/gpt-4o-mini", messages=ASK, tools=[WEATHER])
    assert 5 < counted.input_tokens < longer.input_tokens
    assert not Run.objects.exists() and not UsageRecord.objects.exists()


def test_a_budget_refusal_is_an_anthropic_billing_error(client, alpha, fake_openai):
    Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("0"))
    with pytest.raises(anthropic.APIStatusError) as refused:
        client.messages.create(model="openai/gpt-4o-mini", max_tokens=50, messages=ASK)
    assert refused.value.status_code == 402
    assert refused.value.body["error"]["type"] == "billing_error"
    assert "Monthly Alpha team budget" in refused.value.body["error"]["message"]
    assert not [r for r in fake_openai.requests if r.method == "POST"]


def test_a_failing_provider_falls_back_and_the_row_names_the_model_used(
    client, alpha, fake_openai, fake_anthropic
):
    FallbackPolicy.objects.filter(team=alpha).update(enabled=True, order=["anthropic/claude-haiku-4-5"])
    fake_openai.fail_next_as("server_error")
    message = client.messages.create(model="openai/gpt-4o-mini", max_tokens=50, messages=ASK)
    assert (
        message.model == "anthropic/claude-haiku-4-5" and message.content[0].text == fake_anthropic.reply_text
    )
    assert AuditEntry.objects.filter(action="fallback_triggered").exists()
    assert row_of(message).model == "claude-haiku-4-5"


def test_refusals_name_the_field_in_anthropics_error_shape(client, hub):
    with pytest.raises(anthropic.BadRequestError) as top_k:
        client.messages.create(
            model="openai/gpt-4o-mini", max_tokens=50, messages=ASK, extra_body={"top_k": 5}
        )
    assert "top_k" in top_k.value.body["error"]["message"]
    assert top_k.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.BadRequestError, match="web_search"):
        client.messages.create(
            model="openai/gpt-4o-mini",
            max_tokens=50,
            messages=ASK,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )
    with pytest.raises(anthropic.BadRequestError, match="document"):
        source = {"type": "text", "media_type": "text/plain", "data": "x"}
        content = [{"type": "document", "source": source}, {"type": "text", "text": "Sum up."}]
        client.messages.create(
            model="openai/gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": content}]
        )
    with pytest.raises(anthropic.BadRequestError, match="clear_tool_uses_20250919"):
        edits = [{"type": "clear_tool_uses_20250919", "trigger": {"type": "input_tokens", "value": 9}}]
        client.messages.create(
            model="openai/gpt-4o-mini",
            max_tokens=50,
            messages=ASK,
            extra_body={"context_management": {"edits": edits}},
        )
    assert not Run.objects.filter(status=Run.Status.COMPLETED).exists()


def test_thinking_is_translated_or_refused_by_name(client, hub, fake_anthropic):
    thinking = {"type": "enabled", "budget_tokens": 2048}
    client.messages.create(
        model="anthropic/claude-sonnet-4-5", max_tokens=4096, messages=ASK, thinking=thinking
    )
    assert fake_anthropic.last_request.json["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    with pytest.raises(anthropic.BadRequestError, match="thinking"):
        client.messages.create(model="openai/gpt-4o-mini", max_tokens=200, messages=ASK, thinking=thinking)


def test_a_wrong_key_or_path_answers_in_anthropics_error_shape(hub, hub_url):
    wrong = anthropic.Anthropic(base_url=hub_url, api_key="llmh-not-a-key", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as refused:
        wrong.messages.create(model="openai/gpt-4o-mini", max_tokens=50, messages=ASK)
    assert refused.value.body["error"]["type"] == "authentication_error"
    missing = httpx.post(f"{hub_url}/v1/messages/batches", json={}, headers={"x-api-key": hub.secret})
    assert missing.status_code == 404 and "POST /v1/messages" in missing.json()["error"]["message"]


def test_a_stream_cut_mid_answer_ends_with_an_error_event_and_is_charged(client, hub, fake_openai):
    fake_openai.reply_text = " ".join(f"w{n}" for n in range(40))
    fake_openai.cut_next_stream(after=6)
    streamed = client.messages.stream(model="openai/gpt-4o-mini", max_tokens=200, messages=ASK)
    with pytest.raises(anthropic.APIStatusError, match="mid-response"), streamed as stream:
        for _ in stream:
            pass
    run = Run.objects.get()
    assert run.status == Run.Status.FAILED and run.output and run.reserved_usd is None
    row = UsageRecord.objects.get(run_id=str(run.uuid))
    assert row.output_tokens > 0 and row.cost_usd > 0


def test_a_key_keeps_to_its_allowed_models_and_team(hub, hub_url, alpha):
    narrow = keys.create(alpha, "narrow", allowed_models=["openai/gpt-4o-mini"])
    scoped = anthropic.Anthropic(base_url=hub_url, api_key=narrow.secret, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        scoped.messages.create(model="anthropic/claude-haiku-4-5", max_tokens=50, messages=ASK)
    assert denied.value.body["error"]["type"] == "permission_error"
    with pytest.raises(anthropic.PermissionDeniedError):
        scoped.messages.count_tokens(model="anthropic/claude-haiku-4-5", messages=ASK)
    other = anthropic.Anthropic(
        base_url=hub_url,
        api_key=keys.create(Team.objects.create(name="Other"), "theirs").secret,
        max_retries=0,
    )
    with pytest.raises(anthropic.NotFoundError):  # Alpha's providers are not another team's
        other.messages.count_tokens(model="openai/gpt-4o-mini", messages=ASK)
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    "body, says",
    [
        ({"model": "openai/gpt-4o-mini", "messages": ASK}, "max_tokens"),
        (
            {"model": "openai/gpt-4o-mini", "max_tokens": 9, "messages": [{"role": "tool", "content": "x"}]},
            "role",
        ),
        (
            {"model": "openai/gpt-4o-mini", "max_tokens": 9, "messages": ASK, "temperature": 1.5},
            "temperature",
        ),
        (
            {"model": "openai/gpt-4o-mini", "max_tokens": 9, "messages": ASK, "stop_sequences": ["a"] * 5},
            "at most 4",
        ),
        ({"model": "openai/gpt-4o-mini", "max_tokens": 9, "messages": ASK, "surprise": 1}, "surprise"),
        (
            {
                "model": "openai/gpt-4o-mini",
                "max_tokens": 9,
                "messages": ASK,
                "context_management": {"edits": "x"},
            },
            "context_management",
        ),
        (
            {
                "model": "openai/gpt-4o-mini",
                "max_tokens": 9,
                "messages": ASK,
                "context_management": {"edits": [5]},
            },
            "context_management.edits[0]",
        ),
        (
            {
                "model": "openai/gpt-4o-mini",
                "max_tokens": 9,
                "messages": ASK,
                "context_management": {"edits": [{"type": "clear_thinking_20251015", "clear_all": True}]},
            },
            "clear_all",
        ),
    ],
)
def test_malformed_requests_are_400s_in_anthropics_shape(hub, hub_url, body, says):
    response = httpx.post(f"{hub_url}/v1/messages", json=body, headers={"x-api-key": hub.secret})
    assert response.status_code == 400
    assert response.json()["type"] == "error" and says in response.json()["error"]["message"]
