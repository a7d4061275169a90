"""Stored responses (`store: true`), `previous_response_id`, retrieve / delete / input_items and
their retention, through the official `openai` package against the live hub."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from io import StringIO

import httpx
import openai
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.models import Team
from audit.models import AuditEntry
from gateway import keys
from gateway.models import StoredResponse
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage.models import FallbackPolicy, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def hub(alpha, fake_openai):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    FallbackPolicy.objects.create(team=alpha, enabled=False, retry_count=0)
    return keys.create(alpha, "agent")


@pytest.fixture
def client(hub, hub_url):
    return openai.OpenAI(base_url=f"{hub_url}/v1", api_key=hub.secret, max_retries=0, timeout=30)


@pytest.fixture
def stranger(hub_url, charlie):
    """A key of another team (Charlie's)."""
    key = keys.create(Team.objects.get(name="Charlie's team"), "intruder")
    return openai.OpenAI(base_url=f"{hub_url}/v1", api_key=key.secret, max_retries=0, timeout=30)


def sent(fake) -> list[tuple[str, str]]:
    """(role, text) of every message the provider received last."""
    messages = fake.last_request.json["messages"]
    return [
        (m["role"], m["content"] if isinstance(m["content"], str) else json.dumps(m["content"]))
        for m in messages
    ]


def run_of(answer) -> Run:
    return Run.objects.get(uuid=uuid.UUID(answer.id.removeprefix("resp_")))


def test_a_continued_response_sends_the_whole_conversation_but_not_the_old_instructions(client, fake_openai):
    first = client.responses.create(
        model=MODEL, instructions="Be brief.", input="My name is Ada.", store=True
    )
    assert first.store is True
    second = client.responses.create(
        model=MODEL, instructions="Answer in French.", input="What is my name?", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id and second.store is False
    assert sent(fake_openai) == [
        ("system", "Answer in French."),
        ("user", "My name is Ada."),
        ("assistant", fake_openai.reply_text),
        ("user", "What is my name?"),
    ]
    # The estimate and the charge count the prepended turns.
    assert run_of(second).estimated_input_tokens > run_of(first).estimated_input_tokens + 5
    row = UsageRecord.objects.get(run_id=str(run_of(second).uuid))
    assert row.input_tokens == second.usage.input_tokens > first.usage.input_tokens


def test_a_chain_of_three_carries_every_turn(client, fake_openai):
    first = client.responses.create(model=MODEL, input="One.", store=True)
    second = client.responses.create(model=MODEL, input="Two.", store=True, previous_response_id=first.id)
    client.responses.create(model=MODEL, input="Three.", previous_response_id=second.id)
    texts = [text for _, text in sent(fake_openai)]
    assert texts == ["One.", fake_openai.reply_text, "Two.", fake_openai.reply_text, "Three."]


def test_an_agent_loop_sends_only_the_function_output_after_a_stored_call(client, fake_openai):
    weather = {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    first = client.responses.create(model=MODEL, input="Weather in Paris?", tools=[weather], store=True)
    call = next(item for item in first.output if item.type == "function_call")
    result = {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "sunny"}'}
    second = client.responses.create(
        model=MODEL, input=[result], tools=[weather], previous_response_id=first.id
    )
    assert "sunny" in second.output_text
    messages = fake_openai.last_request.json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == call.call_id == messages[2]["tool_call_id"]


def test_retrieve_input_items_and_delete_answer_in_openais_shapes(client, fake_openai):
    answer = client.responses.create(model=MODEL, input="Say hello.", store=True)
    again = client.responses.retrieve(answer.id)
    assert (
        again.id == answer.id and again.output_text == fake_openai.reply_text and again.usage == answer.usage
    )
    items = client.responses.input_items.list(answer.id)
    assert [item.content[0].text for item in items.data] == ["Say hello."] and items.data[0].role == "user"
    client.responses.delete(answer.id)
    assert not StoredResponse.objects.exists()
    with pytest.raises(openai.NotFoundError, match=f"Response with id '{answer.id}' not found"):
        client.responses.retrieve(answer.id)
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=MODEL, input="Hi", previous_response_id=answer.id)
    assert refused.value.code == "previous_response_not_found"
    assert refused.value.param == "previous_response_id" and answer.id in refused.value.message


def test_nothing_is_stored_unless_asked(client):
    answer = client.responses.create(model=MODEL, input="Say hello.")
    assert answer.store is False and not StoredResponse.objects.exists()
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(answer.id)


def test_another_teams_key_cannot_read_chain_or_delete_a_stored_response(client, stranger, fake_openai):
    answer = client.responses.create(model=MODEL, input="A secret plan.", store=True)
    unknown = f"resp_{uuid.uuid4().hex}"
    posts = len(fake_openai.requests)
    for response_id in (answer.id, unknown):  # both refused alike: nothing tells that it exists
        with pytest.raises(openai.NotFoundError, match=f"Response with id '{response_id}' not found"):
            stranger.responses.retrieve(response_id)
        with pytest.raises(openai.NotFoundError):
            stranger.responses.delete(response_id)
        with pytest.raises(openai.NotFoundError):
            stranger.responses.input_items.list(response_id)
        with pytest.raises(
            openai.BadRequestError, match=f"Previous response with id '{response_id}' not found"
        ):
            stranger.responses.create(model=MODEL, input="Go on.", previous_response_id=response_id)
    assert len(fake_openai.requests) == posts and StoredResponse.objects.count() == 1


def test_a_streamed_response_is_stored_before_its_last_event(client, fake_openai):
    fake_openai.reply_text = " ".join(f"w{n}" for n in range(12))
    events = list(client.responses.create(model=MODEL, input="Count.", store=True, stream=True))
    final = events[-1].response
    assert events[-1].type == "response.completed" and final.store is True
    assert client.responses.retrieve(final.id).output_text == fake_openai.reply_text


def test_a_failed_run_stores_nothing(client, fake_openai):
    fake_openai.fail_next_as("server_error")
    with pytest.raises(openai.APIStatusError):
        client.responses.create(model=MODEL, input="Hi", store=True)
    assert Run.objects.get().status == Run.Status.FAILED and not StoredResponse.objects.exists()


def test_a_stream_cut_mid_answer_stores_nothing(client, fake_openai):
    fake_openai.reply_text = " ".join(f"w{n}" for n in range(30))
    fake_openai.cut_next_stream(after=5)
    events = list(client.responses.create(model=MODEL, input="Count.", store=True, stream=True))
    assert events[-1].type == "response.failed" and not StoredResponse.objects.exists()


def test_bad_store_and_list_parameters_are_refused_by_name(client, hub, hub_url):
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=MODEL, input="Hi", store="yes")
    assert refused.value.param == "store"
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=MODEL, input="Hi", previous_response_id=["resp_1"])
    assert refused.value.param == "previous_response_id"
    answer = client.responses.create(model=MODEL, input="Hi", store=True)
    headers = {"authorization": f"Bearer {hub.secret}"}
    replay = httpx.get(f"{hub_url}/v1/responses/{answer.id}?stream=true", headers=headers)
    assert replay.status_code == 400 and replay.json()["error"]["param"] == "stream"
    paged = httpx.get(f"{hub_url}/v1/responses/{answer.id}/input_items?limit=0", headers=headers)
    assert paged.status_code == 400 and paged.json()["error"]["param"] == "limit"
    put = httpx.put(f"{hub_url}/v1/responses/{answer.id}", headers=headers)
    assert put.status_code == 405 and put.headers["content-type"] == "application/json"


def test_a_response_past_its_teams_retention_is_refused_then_deleted(client, alpha):
    answer = client.responses.create(model=MODEL, input="Remember this.", store=True)
    kept = client.responses.create(model=MODEL, input="And this.", store=True)
    StoredResponse.objects.filter(pk=answer.id).update(created_at=timezone.now() - timedelta(days=31))
    with pytest.raises(openai.BadRequestError, match="previous_response_id|Previous response"):
        client.responses.create(model=MODEL, input="Go on.", previous_response_id=answer.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(answer.id)
    out = StringIO()
    call_command("apply_retention", stdout=out)
    assert "Deleted 1 stored API response(s)" in out.getvalue()
    assert list(StoredResponse.objects.values_list("pk", flat=True)) == [kept.id]
    entry = AuditEntry.objects.get(action="stored_responses_expired")
    assert entry.after == {"deleted": 1} and "Remember" not in json.dumps(entry.after)
    # A longer period keeps an older one.
    alpha.stored_response_retention_days = 90
    alpha.save(update_fields=["stored_response_retention_days"])  # a save: the kept key's team too
    StoredResponse.objects.filter(pk=kept.id).update(created_at=timezone.now() - timedelta(days=60))
    assert client.responses.retrieve(kept.id).id == kept.id


def test_a_chain_whose_first_turn_expired_is_refused_naming_it(client):
    first = client.responses.create(model=MODEL, input="One.", store=True)
    second = client.responses.create(model=MODEL, input="Two.", store=True, previous_response_id=first.id)
    StoredResponse.objects.filter(pk=first.id).delete()
    with pytest.raises(openai.BadRequestError, match=first.id):
        client.responses.create(model=MODEL, input="Three.", previous_response_id=second.id)


def test_a_team_admin_sets_the_retention_and_it_is_audited(alice_client, alpha, bob_client):
    assert (
        bob_client.post(reverse("accounts:team-settings"), {"stored_response_retention_days": 7}).status_code
        == 403
    )
    page = alice_client.post(
        reverse("accounts:team-settings"),
        {"run_visibility": "own", "stored_response_retention_days": 7},
        follow=True,
    )
    assert page.status_code == 200 and "Team settings saved." in page.content.decode()
    alpha.refresh_from_db()
    assert alpha.stored_response_retention_days == 7
    entry = AuditEntry.objects.get(action="team_settings_changed")
    assert (
        entry.before["stored_response_retention_days"],
        entry.after["stored_response_retention_days"],
    ) == (30, 7)
    refused = alice_client.post(
        reverse("accounts:team-settings"), {"run_visibility": "own", "stored_response_retention_days": 0}
    )
    assert "Ensure this value is greater than or equal to 1" in refused.content.decode()


def test_stored_responses_go_with_their_team(client, alpha):
    client.responses.create(model=MODEL, input="Team content.", store=True)
    Team.objects.filter(pk=alpha.pk).delete()
    assert not StoredResponse.objects.exists()
