"""What agent frameworks send, through the hub, against every kind of provider: tool calls
(streamed and not) and their results, structured output with the SDK's parse(), images, and an
agent's tool loop in pydantic-ai. Each fake speaks its provider's own wire format."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import BaseModel

from tests.gateway.conftest import EVERY_KIND, IMAGE_MODELS, data_uri
from usage.models import Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city now.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
KINDS = sorted(EVERY_KIND)


class City(BaseModel):
    name: str
    population: int
    coastal: bool


def sent(fake) -> dict:
    return [r for r in fake.requests if r.method == "POST"][-1].json


@pytest.mark.parametrize("kind", KINDS)
def test_a_tool_call_and_its_result_go_round_in_openais_format(sdk, every_kind, kind):
    model = EVERY_KIND[kind]
    first = sdk.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], max_tokens=200)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id
    followup = [
        *ASK,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny", "celsius": 21}'},
    ]
    second = sdk.chat.completions.create(model=model, messages=followup, tools=[WEATHER], max_tokens=200)
    assert "sunny" in second.choices[0].message.content and second.choices[0].finish_reason == "stop"
    # The provider got the call and its result in its own dialect, tied together.
    body = json.dumps(sent(every_kind[kind]))
    assert "get_weather" in body and "sunny" in body
    rows = UsageRecord.objects.filter(model=model.partition("/")[2])
    assert rows.count() == 2 and all(row.cost_usd is not None for row in rows)


@pytest.mark.parametrize("kind", KINDS)
def test_tool_calls_stream_as_openai_deltas(sdk, every_kind, kind):
    chunks = list(
        sdk.chat.completions.create(
            model=EVERY_KIND[kind],
            messages=ASK,
            tools=[WEATHER],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert pieces and pieces[0].id and pieces[0].function.name == "get_weather"
    assert all(piece.index == 0 for piece in pieces)
    assert json.loads("".join(p.function.arguments or "" for p in pieces)) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage.completion_tokens > 0
    run = Run.objects.get(uuid=uuid.UUID(chunks[0].id.removeprefix("chatcmpl-")))
    assert run.answer["tool_calls"][0]["name"] == "get_weather"


@pytest.mark.parametrize("kind", KINDS)
def test_parse_returns_the_pydantic_model(sdk, every_kind, kind):
    parsed = sdk.chat.completions.parse(
        model=EVERY_KIND[kind],
        messages=[{"role": "user", "content": "Describe Paris."}],
        response_format=City,
    )
    assert isinstance(parsed.choices[0].message.parsed, City)
    assert parsed.choices[0].message.parsed.name == "Paris"
    body = json.dumps(sent(every_kind[kind]))
    assert '"population"' in body  # the schema went to the provider (Anthropic: as a forced tool)


@pytest.mark.parametrize("kind", KINDS)
def test_an_image_reaches_the_provider_inline(sdk, every_kind, kind):
    image = data_uri(64, 32)
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": image}}]
    answer = sdk.chat.completions.create(
        model=IMAGE_MODELS[kind], messages=[{"role": "user", "content": content}]
    )
    assert answer.choices[0].message.content == "I see 1 image."
    assert image.partition(",")[2] in json.dumps(sent(every_kind[kind]))


def test_an_image_url_is_refused_where_the_provider_needs_bytes(sdk, every_kind):
    import openai

    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(
            model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": content}]
        )
    assert "gemini/gemini-2.5-flash does not accept image URLs" in refused.value.message
    assert "data: URI" in refused.value.message
    assert not [r for r in every_kind["gemini"].requests if r.method == "POST"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_pydantic_ai_agent_runs_its_tool_loop_through_the_hub(api_key, hub_url, every_kind, kind):
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    provider = OpenAIProvider(base_url=f"{hub_url}/v1", api_key=api_key.secret)
    agent = Agent(OpenAIChatModel(EVERY_KIND[kind], provider=provider))
    asked = []

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city now."""
        asked.append(city)
        return f"sunny in {city}"

    result = agent.run_sync("What is the weather in Paris?")
    assert asked == ["Paris"]
    assert "sunny in Paris" in result.output
    assert Run.objects.filter(status=Run.Status.COMPLETED).count() == 2  # the call, then the answer


def test_the_run_page_shows_tool_calls_and_structured_output(sdk, every_kind, alice_client):
    called = sdk.chat.completions.create(model="anthropic/claude-haiku-4-5", messages=ASK, tools=[WEATHER])
    parsed = sdk.chat.completions.parse(model="gemini/gemini-2.5-flash", messages=ASK, response_format=City)
    page = alice_client.get(f"/runs/{uuid.UUID(called.id.removeprefix('chatcmpl-'))}/").content.decode()
    assert "Tool calls" in page and "<code>get_weather</code>" in page
    assert "{\n  &quot;city&quot;: &quot;Paris&quot;\n}" in page  # the arguments, laid out
    page = alice_client.get(f"/runs/{uuid.UUID(parsed.id.removeprefix('chatcmpl-'))}/").content.decode()
    assert "Structured output" in page and "&quot;population&quot;: 3," in page


def test_a_stream_cut_inside_a_tool_call_fails_and_charges_what_came(sdk, every_kind):
    import openai

    every_kind["openai"].cut_next_stream(after=4)  # role, the call's first piece, two argument pieces
    with pytest.raises(openai.APIStatusError) as failed:
        sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, tools=[WEATHER])
    assert failed.value.status_code == 503 and "stopped answering mid-response" in failed.value.message
    run = Run.objects.get()
    assert run.status == Run.Status.FAILED and run.answer["tool_calls"][0]["name"] == "get_weather"
    row = UsageRecord.objects.get(run_id=str(run.uuid))
    assert row.input_tokens == run.estimated_input_tokens and row.output_tokens > 0 and row.cost_usd > 0
    assert run.reserved_usd is None  # the hold is released


def test_the_model_picker_says_what_each_model_accepts(every_kind, alice_client):
    page = alice_client.get("/playground/").content.decode()
    assert "GPT-4o mini · tools, JSON schema, images</option>" in page
    assert "o3-mini · tools, JSON schema, reasoning</option>" in page
    assert "Llama 3.2 · tools, JSON schema</option>" in page


def test_chat_pickers_leave_out_embedding_models_which_api_keys_may_still_be_given(every_kind, alice_client):
    playground = alice_client.get("/playground/").content.decode()
    assert 'value="openai/gpt-4o-mini"' in playground
    assert "openai/text-embedding-3-small" not in playground
    keys_page = alice_client.get("/settings/api-keys/").content.decode()
    assert 'value="openai/text-embedding-3-small"' in keys_page
