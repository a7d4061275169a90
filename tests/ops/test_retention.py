"""Retention clears old run text and nothing else; the periodic runner keeps going past a failing job."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.models import AuditEntry
from ops import retention
from ops.maintenance import Maintenance
from providers.base import TokenCount
from usage.models import DailySpend, Run, TeamDailySpend, UsageRecord
from usage.records import record_usage

pytestmark = pytest.mark.django_db
PROMPT = [{"role": "user", "content": "Our confidential launch plan"}]


def make_run(team, user, days_old: int, status=Run.Status.COMPLETED) -> Run:
    run = Run.objects.create(
        team=team,
        user=user,
        model_requested="openai/gpt-4o",
        max_tokens=100,
        status=status,
        messages=PROMPT,
        output="The plan, summarised.",
        input_tokens=12,
        output_tokens=5,
        cost_usd=Decimal("0.0001"),
    )
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=days_old))
    return run


def text_of(run: Run) -> tuple:
    run.refresh_from_db()
    return run.messages, run.output


def test_it_clears_old_prompts_and_outputs_and_keeps_everything_else(alice, alpha):
    old = [make_run(alpha, alice, 40, status) for status in ("completed", "failed", "cancelled")]
    recent = make_run(alpha, alice, 10)
    running = make_run(alpha, alice, 40, Run.Status.STREAMING)
    never_started = make_run(alpha, alice, 40, Run.Status.PENDING)
    usage = record_usage("openai", "gpt-4o", TokenCount(12, 5), "run", run_id=str(old[0].uuid), team=alpha)
    rows = [list(model.objects.values()) for model in (UsageRecord, DailySpend, TeamDailySpend)]

    assert retention.apply(30) == 4

    for run, status in zip(old, ("completed", "failed", "cancelled"), strict=True):
        assert text_of(run) == ([], "")
        assert (run.status, run.input_tokens, run.output_tokens, run.cost_usd) == (
            status,
            12,
            5,
            Decimal("0.0001"),
        )
    assert text_of(recent) == (PROMPT, "The plan, summarised.")
    assert text_of(running) == (PROMPT, "The plan, summarised.")  # still in progress: never touched
    assert text_of(never_started) == ([], "")
    assert never_started.status == Run.Status.CANCELLED and "retention period" in never_started.error_message
    assert [list(model.objects.values()) for model in (UsageRecord, DailySpend, TeamDailySpend)] == rows
    assert UsageRecord.objects.get(pk=usage.pk).cost_usd == usage.cost_usd
    entry = AuditEntry.objects.get(action="retention_applied")
    assert entry.actor_name == "system" and entry.object_id == "30 days"
    assert entry.after["runs_cleared"] == 4 and entry.after["not_started_cancelled"] == 1
    assert entry.after["days"] == 30


def test_a_pass_with_nothing_to_clear_writes_no_audit_entry(alice, alpha):
    make_run(alpha, alice, 40)
    assert retention.apply(30) == 1
    assert retention.apply(30) == 0
    assert AuditEntry.objects.filter(action="retention_applied").count() == 1


def test_zero_days_keeps_everything(alice, alpha, settings):
    run = make_run(alpha, alice, 4000)
    settings.LLMHUB_RETENTION_DAYS = 0
    assert retention.apply_configured() == 0
    assert text_of(run) == (PROMPT, "The plan, summarised.")


def test_the_command_applies_the_configured_days_or_its_own(alice, alpha, settings):
    settings.LLMHUB_RETENTION_DAYS = 0
    out = StringIO()
    call_command("apply_retention", stdout=out)
    assert "Retention is off" in out.getvalue()
    make_run(alpha, alice, 8)
    call_command("apply_retention", "--days", "7", stdout=out)
    assert "Cleared the prompts and outputs of 1 run(s) older than 7 days." in out.getvalue()
    assert AuditEntry.objects.get(action="retention_applied").actor_name == "manage.py apply_retention"


def test_it_clears_in_batches_past_the_batch_size(alice, alpha):
    for _ in range(5):
        make_run(alpha, alice, 40)
    assert retention.apply(30, batch=2) == 5
    assert not retention.clearable(timezone.now() - timedelta(days=30)).exists()


async def test_the_runner_repeats_each_job_and_survives_one_that_fails(caplog):
    runner, calls = Maintenance(), []

    def broken() -> None:
        raise RuntimeError("the database is locked")

    async def counting() -> None:
        calls.append(1)

    runner.register("counting", 0.02, counting)
    runner.register("broken", 0.02, broken)
    for job in runner.jobs.values():
        job.due_at = 0  # due at once: no start-up spread in a test
    with caplog.at_level(logging.ERROR, logger="llmhub.maintenance"):
        runner.start()
        try:
            async with asyncio.timeout(10):
                while len(calls) < 3 or runner.jobs["broken"].runs < 3:
                    await asyncio.sleep(0.01)
        finally:
            await runner.stop()
    assert "Periodic job broken failed" in caplog.text and "the database is locked" in caplog.text
    assert runner.task is None


async def test_the_application_answers_the_lifespan_protocol():
    from llmhub.asgi import application

    incoming = asyncio.Queue()
    for message in ({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}):
        incoming.put_nowait(message)
    sent = []

    async def send(message: dict) -> None:
        sent.append(message["type"])

    await asyncio.wait_for(application({"type": "lifespan"}, incoming.get, send), 10)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
