"""OpenAI's Responses API (stored responses: test_responses_store.py), driven by the official `openai` package's responses.create
against the live hub, on OpenAI and Anthropic providers behind it."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import openai
import pytest

from audit.models import AuditEntry
from gateway import keys
from usage.models import Budget, FallbackPolicy, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
MODELS = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city now.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ASK = "What is the weather in Paris?"


@pytest.fixture
def hub(alpha, openai_and_anthropic):
    return keys.create(alpha, "codex")


@pytest.fixture
def client(hub, hub_url):
    return openai.OpenAI(base_url=f"{hub_url}/v1", api_key=hub.secret, max_retries=0, timeout=30)


def row_of(answer) -> UsageRecord:
    return UsageRecord.objects.get(run_id=str(uuid.UUID(answer.id.removeprefix("resp_"))))


def fake_for(model: str, request):
    return request.getfixturevalue(f"fake_{model.partition('/')[0]}")


@pytest.mark.parametrize("model", MODELS)
def test_a_response_comes_back_with_its_usage_recorded(client, hub, model, request):
    fake = fake_for(model, request)
    answer = client.responses.create(
        model=model, instructions="Be brief.", input="Say hello.", max_output_tokens=60
    )
    assert answer.status == "completed" and answer.output_text == fake.reply_text and answer.model == model
    row = row_of(answer)
    assert row.api_key == hub.key and row.cost_usd > 0
    assert (row.input_tokens, row.output_tokens) == (answer.usage.input_tokens, answer.usage.output_tokens)
    assert "Be brief." in json.dumps(fake.last_request.json)


@pytest.mark.parametrize("model", MODELS)
def test_a_stream_follows_the_responses_event_sequence(client, hub, model, request):
    fake = fake_for(model, request)
    fake.reply_text = " ".join(f"w{n}" for n in range(20))
    events = list(client.responses.create(model=model, input="Count.", max_output_tokens=100, stream=True))
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds.count("response.output_text.delta") >= 20
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    assert final.output_text == fake.reply_text and final.usage.output_tokens == row_of(final).output_tokens


def test_the_sdks_stream_helper_puts_the_response_together(client, hub, fake_openai):
    with client.responses.stream(model="openai/gpt-4o-mini", input="Say hello.", tools=[WEATHER]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    call = final.output[-1]
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Paris"}


@pytest.mark.parametrize("model", MODELS)
def test_a_function_call_and_its_output_go_round(client, hub, model, request):
    first = client.responses.create(model=model, input=ASK, tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    assert first.tools[0].name == "get_weather" and first.tool_choice == "auto"  # as asked
    followup = [
        {"role": "user", "content": ASK},
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'},
    ]
    second = client.responses.create(model=model, input=followup, tools=[WEATHER])
    assert "sunny" in second.output_text
    sent = json.dumps(fake_for(model, request).last_request.json)
    assert "get_weather" in sent and "sunny" in sent and call.call_id in sent


@pytest.mark.parametrize("model", MODELS)
def test_streamed_function_call_arguments_arrive_as_deltas(client, hub, model):
    events = list(client.responses.create(model=model, input=ASK, tools=[WEATHER], stream=True))
    kinds = [event.type for event in events]
    assert "response.function_call_arguments.delta" in kinds and kinds[-1] == "response.completed"
    done = [e.item for e in events if e.type == "response.output_item.done"]
    assert done[-1].type == "function_call" and json.loads(done[-1].arguments) == {"city": "Paris"}


def test_structured_output_through_text_format(client, hub, fake_openai):
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    text = {"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}}
    answer = client.responses.create(model="openai/gpt-4o-mini", input="A city.", text=text)
    assert "name" in json.loads(answer.output_text)
    assert fake_openai.last_request.json["response_format"]["json_schema"]["name"] == "city"


def test_stateful_and_hosted_features_are_refused_by_name(client, hub, fake_openai):
    with pytest.raises(openai.BadRequestError, match="conversation"):
        client.responses.create(model="openai/gpt-4o-mini", input="Hi", conversation="conv_123")
    with pytest.raises(openai.BadRequestError, match="web_search"):
        client.responses.create(model="openai/gpt-4o-mini", input="Hi", tools=[{"type": "web_search"}])
    with pytest.raises(openai.BadRequestError, match="input_file"):
        content = [{"type": "input_file", "file_id": "file-1"}]
        client.responses.create(model="openai/gpt-4o-mini", input=[{"role": "user", "content": content}])
    assert not [r for r in fake_openai.requests if r.method == "POST"]


def test_a_budget_refusal_is_a_402(client, alpha, fake_openai):
    Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("0"))
    with pytest.raises(openai.APIStatusError) as refused:
        client.responses.create(model="openai/gpt-4o-mini", input="Hi")
    assert refused.value.status_code == 402 and "Monthly Alpha team budget" in refused.value.message


def test_a_failing_provider_falls_back(client, alpha, fake_openai, fake_anthropic):
    FallbackPolicy.objects.filter(team=alpha).update(enabled=True, order=["anthropic/claude-haiku-4-5"])
    fake_openai.fail_next_as("server_error")
    answer = client.responses.create(model="openai/gpt-4o-mini", input="Hi")
    assert answer.model == "anthropic/claude-haiku-4-5" and answer.output_text == fake_anthropic.reply_text
    assert AuditEntry.objects.filter(action="fallback_triggered").exists()
    assert row_of(answer).model == "claude-haiku-4-5"


def test_a_stream_cut_mid_answer_ends_with_response_failed_and_is_charged(client, hub, fake_openai):
    from usage.models import Run

    fake_openai.reply_text = " ".join(f"w{n}" for n in range(40))
    fake_openai.cut_next_stream(after=6)
    events = list(client.responses.create(model="openai/gpt-4o-mini", input="Count.", stream=True))
    assert events[-1].type == "response.failed" and "mid-response" in events[-1].response.error.message
    run = Run.objects.get()
    assert run.status == Run.Status.FAILED and run.reserved_usd is None
    assert UsageRecord.objects.get(run_id=str(run.uuid)).output_tokens > 0
