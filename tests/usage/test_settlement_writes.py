"""A settlement's writes: the run's final fields, its usage row and its roll-ups, exactly as the ORM
would write them, once. On PostgreSQL the three are one statement (one round trip)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from providers.base import Message
from providers.models import CircuitBreaker
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage import records, rollups, runs
from usage.models import DailySpend, Run, TeamDailySpend, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [Message("user", "Tell me about ledgers.")]


@pytest.fixture
def openai(alpha, fake_openai):
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)


def finished_run(alice, alpha) -> Run:
    """A run as it ends streaming: its text and tokens known, its hold still on."""
    run = runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 300)
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.STREAMING,
        started_at=timezone.now(),
        model_used="openai/gpt-4o",
        reserved_usd=Decimal("0.5"),
        reservation_expires_at=timezone.now(),
    )
    run = Run.objects.get(pk=run.pk)
    run.status, run.finished_at = Run.Status.COMPLETED, timezone.now()
    run.output, run.answer = "Double entry.", {"finishes": ["stop"]}
    run.input_tokens, run.output_tokens, run.cache_read_tokens = 1000, 500, 100
    return run


def writes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith(("UPDATE", "INSERT", "WITH"))]


def test_a_settlement_writes_the_run_its_usage_row_and_rollups_once(alice, alpha, openai):
    run = finished_run(alice, alpha)
    assert runs.settle(run) is True
    stored = Run.objects.get(pk=run.pk)
    assert (stored.status, stored.output, stored.answer) == (
        "completed",
        "Double entry.",
        {"finishes": ["stop"]},
    )
    assert (stored.reserved_usd, stored.reservation_expires_at, stored.cost_usd) == (None, None, run.cost_usd)
    record = UsageRecord.objects.get(run_id=str(run.uuid))
    assert (record.team_id, record.user_id, record.api_key_id, record.source) == (
        alpha.pk,
        alice.pk,
        None,
        "run",
    )
    assert (record.input_tokens, record.output_tokens, record.cache_read_tokens) == (1000, 500, 100)
    assert record.cost_usd == run.cost_usd > 0 and record.price_id is not None
    assert record.created_at.date() == timezone.now().date()
    daily, team = DailySpend.objects.get(), TeamDailySpend.objects.get()
    assert (daily.runs, daily.input_tokens, daily.output_tokens, daily.cost_usd) == (
        1,
        1000,
        500,
        run.cost_usd,
    )
    assert (team.runs, team.cost_usd, team.day) == (1, run.cost_usd, daily.day)
    assert rollups.differences() == []

    with pytest.raises(runs.RunTaken):  # settled already: the claim finds no run, nothing is written
        runs.settle(run)
    assert UsageRecord.objects.count() == 1 and DailySpend.objects.get().runs == 1
    assert TeamDailySpend.objects.get().runs == 1


def test_on_postgresql_a_settlement_writes_in_one_statement(alice, alpha, openai):
    run = finished_run(alice, alpha)
    with CaptureQueriesContext(connection) as queries:
        runs.settle(run)
    expected = 1 if connection.vendor == "postgresql" else 3
    assert len(writes(queries)) == expected, writes(queries)
    assert UsageRecord.objects.get().cost_usd == DailySpend.objects.get().cost_usd == run.cost_usd


def test_a_settlement_closes_the_circuit_of_the_provider_that_answered_reading_it_with_its_claim(
    alice, alpha, openai
):
    CircuitBreaker.objects.create(provider_id="openai", failures=3, last_error="OpenAI timed out.")
    run = finished_run(alice, alpha)
    with CaptureQueriesContext(connection) as queries:
        assert runs.settle(run, answered_by="openai") is True
    row = CircuitBreaker.objects.get()
    assert (row.failures, row.open_until, row.last_error) == (0, None, "")
    sent = [q["sql"] for q in queries.captured_queries]
    breakers = [sql for sql in sent if "providers_circuitbreaker" in sql]
    claimed = next(i for i, sql in enumerate(sent) if sql.startswith(('UPDATE "usage_run"', "WITH")))
    read = breakers[0]  # after the claim, in the settlement (PostgreSQL: in its one statement)...
    assert sent.index(read) >= claimed and "EXISTS" in read
    assert breakers[-1].startswith('UPDATE "providers_circuitbreaker"')  # ...closed once it committed
    assert UsageRecord.objects.get().cost_usd == run.cost_usd > 0


@pytest.fixture
def breaker_unwritable():
    """Every write of a circuit breaker's row fails, as one locked past the timeout would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'the breaker row is locked'; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER refuse BEFORE UPDATE ON providers_circuitbreaker "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER refuse BEFORE UPDATE ON providers_circuitbreaker "
                "BEGIN SELECT RAISE(ABORT, 'the breaker row is locked'); END"
            )
    yield
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER refuse"
            + (" ON providers_circuitbreaker" if connection.vendor == "postgresql" else "")
        )
        if connection.vendor == "postgresql":
            cursor.execute("DROP FUNCTION refuse()")


def test_a_circuit_that_cannot_be_closed_leaves_the_settlement_written(
    alice, alpha, openai, breaker_unwritable, caplog
):
    CircuitBreaker.objects.create(provider_id="openai", failures=3, last_error="OpenAI timed out.")
    run = finished_run(alice, alpha)
    assert runs.settle(run, answered_by="openai") is True
    assert UsageRecord.objects.get().cost_usd == DailySpend.objects.get().cost_usd == run.cost_usd > 0
    assert Run.objects.get(pk=run.pk).status == Run.Status.COMPLETED
    assert CircuitBreaker.objects.get().failures == 3  # as it was, and said so:
    assert "Could not record that openai answered" in caplog.text


def test_a_taken_run_whose_circuit_cannot_be_closed_still_says_it_was_taken(
    alice, alpha, openai, breaker_unwritable
):
    run = finished_run(alice, alpha)
    assert runs.settle(run) is True
    CircuitBreaker.objects.create(provider_id="openai", failures=2)
    with pytest.raises(runs.RunTaken):
        runs.settle(run, answered_by="openai")
    assert UsageRecord.objects.count() == 1


def test_a_settlement_of_a_run_taken_already_still_closes_the_circuit(alice, alpha, openai):
    run = finished_run(alice, alpha)
    assert runs.settle(run) is True
    CircuitBreaker.objects.create(provider_id="openai", failures=2)
    with pytest.raises(runs.RunTaken):
        runs.settle(run, answered_by="openai")
    assert CircuitBreaker.objects.get().failures == 0 and UsageRecord.objects.count() == 1


def test_a_settlement_writes_no_circuit_that_has_nothing_to_close(alice, alpha, openai):
    CircuitBreaker.objects.create(provider_id="openai", failures=0, last_error="Kept.")
    run = finished_run(alice, alpha)
    with CaptureQueriesContext(connection) as queries:
        assert runs.settle(run, answered_by="openai") is True
    assert CircuitBreaker.objects.get().last_error == "Kept."
    assert not [sql for sql in writes(queries) if sql.startswith('UPDATE "providers_circuitbreaker"')]


def at_once(work, items: list) -> list:
    """work(item) for every item from threads released together, each on its own connection;
    what each returned or raised."""
    barrier = threading.Barrier(len(items))

    def one(item):
        try:
            barrier.wait()
            return work(item)
        except Exception as error:  # noqa: BLE001 - handed back for the test to look at
            return error
        finally:
            connections.close_all()

    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(one, items))


def test_concurrent_settlements_land_in_one_rollup_row_to_the_cent(alice, alpha, openai):
    settling = [finished_run(alice, alpha) for _ in range(12)]
    assert at_once(runs.settle, settling) == [True] * 12
    daily, team = DailySpend.objects.get(), TeamDailySpend.objects.get()
    assert (daily.runs, daily.input_tokens, daily.output_tokens) == (12, 12_000, 6_000)
    assert daily.cost_usd == team.cost_usd == settling[0].cost_usd * 12 > 0
    assert rollups.differences() == []
    assert Run.objects.filter(status="completed", reserved_usd__isnull=True).count() == 12


def test_a_run_settled_by_two_at_once_is_charged_once(alice, alpha, openai):
    run = finished_run(alice, alpha)
    copies = [Run.objects.get(pk=run.pk) for _ in range(4)]
    for copy in copies:
        copy.__dict__.update({name: getattr(run, name) for name in records.SETTLED if name != "cost_usd"})
    outcomes = at_once(runs.settle, copies)
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["RunTaken"] * 3 + ["bool"]
    assert UsageRecord.objects.count() == 1 and DailySpend.objects.get().runs == 1
    assert TeamDailySpend.objects.get().runs == 1 and rollups.differences() == []
