"""Runs always end: leases renewed while a run lives, text checkpointed, and recovery of the runs
whose server died: interrupted, hold released, delivered text charged."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.utils import timezone

from providers.base import Delta, Message
from providers.registry import registry
from tests.conftest import GOOD_KEYS, failing_writes
from usage import recovery, runs, tokens
from usage.events import Ended, HubError, Started
from usage.models import Budget, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [Message("user", "Tell me a long story.")]


@pytest.fixture(autouse=True)
def short_leases(settings):
    settings.LLMHUB_RUN_LEASE_SECONDS = 2
    settings.LLMHUB_LEASE_RENEW_SECONDS = 0.3
    settings.LLMHUB_CHECKPOINT_SECONDS = 0.2


@pytest.fixture
def openai(alpha, fake_openai):
    Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("1"))
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)


def dead_run(alice, alpha, output: str, expired: timedelta = timedelta(seconds=5)) -> Run:
    """A run as a killed server leaves it: streaming, holding money, its lease run out."""
    run = runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 300)
    since = timezone.now() - expired
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.STREAMING,
        started_at=since,
        model_used="openai/gpt-4o",
        output=output,
        reserved_usd=run.max_cost_usd,
        reservation_expires_at=since,
    )
    return Run.objects.get(pk=run.pk)


async def test_a_live_run_renews_its_lease_and_checkpoints_its_text(alice, alpha, openai, fake_openai):
    fake_openai.reply_text = "word " * 80
    fake_openai.chunk_delay = 0.05  # four seconds of text: longer than the lease
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o", ASK, 300)
    received, saved = "", []
    async for event in runs.stream(run):
        if isinstance(event, Delta):
            received += event.text
            row = await Run.objects.aget(pk=run.pk)
            if row.status == Run.Status.STREAMING:
                assert row.reservation_expires_at > timezone.now()  # never lapses while it runs
                assert received.startswith(row.output)
                saved.append((len(received), len(row.output)))
        elif isinstance(event, Ended):
            run = event.run
    assert run.status == Run.Status.COMPLETED and run.output == received
    behind = [got - kept for got, kept in saved[20:]]  # once it has been running a while
    assert max(behind) <= len("word ") * 30  # a checkpoint interval behind, and a slow write or two


def test_recovery_ends_a_dead_run_charged_for_what_it_delivered(alice, alpha, openai, alice_client):
    run = dead_run(alice, alpha, "Once upon a time there was a budget")
    assert recovery.recover() == 1
    run.refresh_from_db()
    assert (
        run.status == Run.Status.INTERRUPTED
        and run.reserved_usd is None
        and run.reservation_expires_at is None
    )
    assert run.output_tokens == tokens.count_text(run.output, "gpt-4o", "openai")
    assert run.input_tokens == run.estimated_input_tokens
    usage = UsageRecord.objects.get(run_id=str(run.uuid))
    assert usage.output_tokens == run.output_tokens and usage.cost_usd == run.cost_usd > 0
    assert run.error_message == "The server restarted while this run was streaming. The text so far is kept."
    page = alice_client.get(f"/runs/{run.uuid}/").content.decode()
    assert "Interrupted." in page and "Run again" in page
    assert "Streaming" not in page and "Cancel" not in page
    assert recovery.recover() == 0  # once only


def test_recovery_leaves_live_runs_alone(alice, alpha, openai):
    run = dead_run(alice, alpha, "still going", expired=timedelta(seconds=-30))  # lease in the future
    assert recovery.recover() == 0
    assert Run.objects.get(pk=run.pk).status == Run.Status.STREAMING


def test_recovery_frees_the_budget_a_dead_run_held(alice, alpha, openai):
    Budget.objects.filter(team=alpha).update(monthly_limit_usd=Decimal("0.01"))
    dead_run(alice, alpha, "")
    an_hour = timezone.now() + timedelta(hours=1)
    Run.objects.filter(status=Run.Status.STREAMING).update(
        reserved_usd=Decimal("0.01"), reservation_expires_at=an_hour
    )
    blocked = runs.create_run(alice, alpha, "openai/gpt-4o-mini", ASK, 10)
    with pytest.raises(runs.budgets.BudgetRefused):
        runs.budgets.reserve(blocked)
    recovery.recover(now=timezone.now() + timedelta(hours=2))  # its lease ran out meanwhile
    runs.budgets.reserve(blocked)  # no refusal: the hold is gone


def test_an_api_request_that_never_started_is_ended(alice, alpha, openai):
    from gateway import keys

    key = keys.create(alpha, "ci").key
    run = runs.create_run(None, alpha, "openai/gpt-4o", ASK, 100, api_key=key)
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    browser = runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 100)  # waits for its Start button
    Run.objects.filter(pk=browser.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    assert recovery.recover() == 1
    assert Run.objects.get(pk=run.pk).status == Run.Status.INTERRUPTED
    assert Run.objects.get(pk=browser.pk).status == Run.Status.PENDING


def test_the_recover_runs_command(alice, alpha, openai):
    dead_run(alice, alpha, "text")
    out = StringIO()
    call_command("recover_runs", stdout=out)
    assert out.getvalue().strip() == "Ended 1 interrupted run."


async def test_a_run_recovered_while_it_still_streams_is_settled_once(alice, alpha, openai, fake_openai):
    """A run too slow to renew its lease is recovered elsewhere: it stops, and is never charged twice."""
    fake_openai.reply_text = "word " * 400
    fake_openai.chunk_delay = 0.02
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o", ASK, 500)
    events = aiter(runs.stream(run))
    assert isinstance(await anext(events), Started)
    await anext(events)
    await Run.objects.filter(pk=run.pk).aupdate(reservation_expires_at=timezone.now() - timedelta(seconds=1))
    assert await sync_to_async(recovery.recover)() == 1
    rest = [event async for event in events]
    assert isinstance(rest[-1], Ended)
    await asyncio.sleep(0.1)
    assert await UsageRecord.objects.filter(run_id=str(run.uuid)).acount() == 1
    assert (await Run.objects.aget(pk=run.pk)).status == Run.Status.INTERRUPTED


async def test_a_checkpoint_the_database_refuses_stops_the_run_with_an_error(
    alice, alpha, openai, fake_openai
):
    fake_openai.reply_text = "word " * 400
    fake_openai.chunk_delay = 0.02
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o", ASK, 500)
    fault = failing_writes("usage_run", "UPDATE OF output")
    await sync_to_async(fault.__enter__)()
    try:
        events = [event async for event in runs.stream(run)]
    finally:
        await sync_to_async(fault.__exit__)(None, None, None)
    ended = events[-1]
    assert isinstance(ended, Ended) and not ended.completed and not ended.settled
    assert isinstance(ended.error, HubError)
    assert (
        ended.run.error_message
        == "The hub's database could not be written, so the run stopped. The text so far is kept."
    )
    assert len(ended.run.output) < len(fake_openai.reply_text)  # stopped early, not after the whole answer
