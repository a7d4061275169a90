"""Runs in the domain layer: per-run caps, overruns, unpriced models, usage rows."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from automations.models import Automation
from providers.base import Delta, Message
from providers.models import Price
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage import records, runs
from usage.events import Ended
from usage.models import Budget, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [Message("user", "Write at length about budgets.")]


@pytest.fixture
def openai(alpha, fake_openai):
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)


async def finish(run: Run) -> tuple[Run, str]:
    text = ""
    async for event in runs.stream(run):
        if isinstance(event, Delta):
            text += event.text
        elif isinstance(event, Ended):
            run = event.run
    return run, text


def test_a_hard_cap_limits_the_max_tokens_a_run_asks_for(alice, alpha, openai):
    Budget.objects.create(team=alpha, per_run_hard_cap_tokens=200)
    run = runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 4000)
    assert run.max_tokens == 200
    assert (
        run.max_cost_usd < runs.create_run(alice, alpha, "openai/gpt-4o-mini", ASK, 4000).max_cost_usd * 100
    )


def test_the_tightest_cap_of_all_matching_budgets_applies(alice, alpha, openai, charlie):
    Budget.objects.create(team=alpha, per_run_hard_cap_tokens=900)
    Budget.objects.create(provider=openai, per_run_hard_cap_tokens=300)
    Budget.objects.create(team=charlie.memberships.get().team, per_run_hard_cap_tokens=5)  # not Alpha's
    assert runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 4000).max_tokens == 300


def test_a_soft_cap_warns_before_the_run_names_the_budget(alice, alpha, openai, alice_client):
    Budget.objects.create(team=alpha, provider=openai, per_run_soft_cap_tokens=500)
    run = runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 2000)
    assert (
        run.warning
        == "This run may write up to 2,000 tokens, over the soft cap of 500 set by the Alpha on OpenAI budget."
    )
    assert "over the soft cap of 500" in alice_client.get(f"/runs/{run.uuid}/").content.decode()
    assert runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 400).warning == ""


async def test_a_provider_that_streams_past_the_cap_is_cut_off(alice, alpha, openai, fake_openai):
    fake_openai.ignore_max_tokens = True
    fake_openai.reply_text = "word " * 2000
    fake_openai.chunk_delay = 0.005  # still writing when we hang up, so the hang-up is seen
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o", ASK, 50)
    run, text = await finish(run)
    assert run.status == Run.Status.COMPLETED
    assert run.error_message == "Stopped at the cap of 50 output tokens."
    assert run.output_tokens == 50 and len(text) < len(fake_openai.reply_text)
    assert await asyncio.to_thread(fake_openai.client_disconnected.wait, 5)


async def test_a_provider_that_stops_at_the_cap_is_not_cut_off(alice, alpha, openai, fake_openai):
    """Pieces like "word " count two tokens each on their own: the cap is checked on the whole text."""
    fake_openai.realistic = True
    fake_openai.reply_text = "word " * 600  # the provider stops at max_tokens by its own count
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o", ASK, 500)
    run, text = await finish(run)
    assert run.status == Run.Status.COMPLETED and run.error_message == ""
    assert text == "word " * 499 + "word"
    assert run.output_tokens == fake_openai.realistic_tokens(text) == 500  # the provider's count


async def test_an_unpriced_model_runs_with_its_cost_unknown_never_zero(alice, alpha, openai):
    await Price.objects.filter(model_id="openai/o1").adelete()
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/o1", ASK, 100)
    assert run.max_cost_usd is None and run.estimated_cost_usd is None
    run, _ = await finish(run)
    usage = await UsageRecord.objects.aget(run_id=str(run.uuid))
    assert usage.cost_usd is None and run.cost_usd is None and usage.output_tokens > 0


async def test_the_usage_row_carries_team_user_and_the_price_it_was_charged(
    alice, alpha, openai, fake_openai
):
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o-mini", ASK, 100)
    run, text = await finish(run)
    usage = await UsageRecord.objects.select_related("price").aget(run_id=str(run.uuid))
    assert (usage.team_id, usage.user_id, usage.source) == (alpha.pk, alice.pk, "run")
    assert usage.price.model_ref == "openai/gpt-4o-mini"
    assert text == fake_openai.reply_text == run.output


async def test_a_settlement_writes_only_what_the_run_changed(alice, alpha, openai, fake_openai):
    """Its automation deleted while it streams (the run's automation is set to none): the settlement
    commits, charges the run and leaves the automation unset, as it writes only its own columns."""
    automation = await Automation.objects.acreate(team=alpha, name="Summarize", prompt_template="{text}")
    run = await sync_to_async(runs.create_run)(
        alice, alpha, "openai/gpt-4o-mini", ASK, 100, automation=automation
    )
    deleted = Automation.objects.filter(pk=automation.pk)
    async for event in runs.stream(run):
        if isinstance(event, Delta) and await deleted.aexists():
            await deleted.adelete()  # as from another process: the run in memory still names it
        elif isinstance(event, Ended):
            assert event.settled and event.completed
    stored = await Run.objects.aget(pk=run.pk)
    assert stored.automation_id is None
    assert (stored.status, stored.output) == (Run.Status.COMPLETED, fake_openai.reply_text)
    assert stored.cost_usd == (await UsageRecord.objects.aget(run_id=str(run.uuid))).cost_usd > 0


# Set when a run is made and never by its settlement (or changed by others meanwhile: a deleted user,
# automation or key leaves the run with none).
MADE_WITH_THE_RUN = {
    "id",
    "uuid",
    "team",
    "user",
    "automation",
    "api_key",
    "request_id",
    "model_requested",
    "kind",
    "messages",
    "max_tokens",
    "temperature",
    "options",
    "estimated_input_tokens",
    "estimated_cost_usd",
    "warning",
    "created_at",
}


def test_every_field_of_a_run_is_either_settled_or_made_with_it():
    """A settlement writes records.SETTLED and nothing else: a field added to Run fails here until it
    is put on one side, so a field that running changes is never silently left unsaved."""
    fields = {field.name for field in Run._meta.concrete_fields}
    assert not MADE_WITH_THE_RUN & set(records.SETTLED)
    assert fields - MADE_WITH_THE_RUN == set(records.SETTLED)
