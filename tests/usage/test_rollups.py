"""Daily roll-ups equal the usage rows they sum, to the cent, however the settlements interleave;
`manage.py rebuild_rollups` rebuilds them and checks them."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from gateway import keys
from providers.base import Message, TokenCount
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage import budgets, rollups, spend
from usage.models import Budget, DailySpend, Run
from usage.records import record_usage

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [Message("user", "Write about budgets.")]


@pytest.fixture
def openai(alpha, fake_openai):
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)


def at_once(count: int, settle) -> None:
    """Call `settle(n)` from `count` threads released together, each on its own connection."""
    barrier = threading.Barrier(count)

    def work(n: int) -> None:
        try:
            barrier.wait()
            settle(n)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(count) as pool:
        for future in [pool.submit(work, n) for n in range(count)]:
            future.result()


def test_usage_without_a_user_has_one_rollup_row_per_day_and_key(alpha, openai):
    key = keys.create(alpha, "ci").key
    for _ in range(3):
        record_usage("openai", "gpt-4o", TokenCount(1000, 500), "api", team=alpha, api_key=key)
    record_usage("openai", "gpt-4o", TokenCount(1000, 500), "cli")  # no team, user or key at all
    record_usage("openai", "gpt-4o", TokenCount(1000, 500), "cli")
    rows = sorted(DailySpend.objects.all(), key=lambda row: row.team_id or 0)
    assert [(r.team_id, r.runs, r.cost_usd) for r in rows] == [
        (None, 2, Decimal("0.015")),
        (alpha.pk, 3, Decimal("0.0225")),
    ]


def test_concurrent_settlements_without_a_user_land_in_one_row_to_the_cent(alpha, openai):
    key = keys.create(alpha, "ci").key
    at_once(
        12, lambda n: record_usage("openai", "gpt-4o", TokenCount(1000, 500), "api", team=alpha, api_key=key)
    )
    at_once(
        12, lambda n: record_usage("openai", "gpt-4o", TokenCount(1000, 500), "api", team=alpha, api_key=key)
    )
    row = DailySpend.objects.get()
    assert (row.runs, row.input_tokens, row.output_tokens) == (24, 24_000, 12_000)
    assert row.cost_usd == Decimal("0.0075") * 24
    assert rollups.differences() == []


def test_a_dollar_budget_has_61_cents_left_after_39_cents_of_api_spend(alpha, openai):
    """Issue 12: concurrent API settlements made the roll-ups several times the real spend, and a
    $1.00 budget refused runs with "$0.00 left" after $0.39."""
    key = keys.create(alpha, "ci").key
    Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("1.00"))
    # 4,000 input and 2,000 output tokens of gpt-4o: $0.01 + $0.02.
    at_once(
        7, lambda n: record_usage("openai", "gpt-4o", TokenCount(4000, 2000), "api", team=alpha, api_key=key)
    )
    at_once(
        6, lambda n: record_usage("openai", "gpt-4o", TokenCount(4000, 2000), "api", team=alpha, api_key=key)
    )
    today = timezone.localdate()
    assert spend.breakdown(spend.Filters([alpha.pk], today, today)).cost == Decimal("0.39")
    fits = Run.objects.create(
        team=alpha, model_requested="openai/gpt-4o", max_tokens=1, max_cost_usd=Decimal("0.61")
    )
    budgets.reserve(fits)
    assert fits.reserved_usd == Decimal("0.61")
    Run.objects.filter(pk=fits.pk).update(reserved_usd=None)
    too_big = Run.objects.create(
        team=alpha, model_requested="openai/gpt-4o", max_tokens=1, max_cost_usd=Decimal("0.62")
    )
    with pytest.raises(budgets.BudgetRefused) as refused:
        budgets.reserve(too_big)
    assert (
        str(refused.value) == "Monthly Alpha team budget: $0.61 of $1.00 left; this run may cost up to $0.62."
    )


def test_deleting_a_user_folds_their_rollups_into_the_rows_without_a_user(alice, bob, alpha, openai):
    record_usage("openai", "gpt-4o", TokenCount(1000, 500), "run", team=alpha, user=alice)
    record_usage("openai", "gpt-4o", TokenCount(1000, 500), "run", team=alpha, user=bob)
    record_usage("openai", "gpt-4o", TokenCount(1000, 500), "api", team=alpha)
    alice.delete()
    bob.delete()
    row = DailySpend.objects.get()
    assert (row.user_id, row.runs, row.cost_usd) == (None, 3, Decimal("0.0225"))
    assert rollups.differences() == []


def test_deleting_a_team_keeps_its_spend_in_the_rows_without_a_team(alice, alpha, openai):
    key = keys.create(alpha, "ci").key
    record_usage("openai", "gpt-4o", TokenCount(1000, 500), "api", team=alpha, api_key=key)
    record_usage("openai", "gpt-4o", TokenCount(1000, 500), "run", team=alpha, user=alice)
    record_usage("openai", "gpt-4o", TokenCount(1000, 500), "cli")
    alpha.delete()
    assert sorted((r.user_id or 0, r.runs) for r in DailySpend.objects.filter(team=None)) == [
        (0, 2),
        (alice.pk, 1),
    ]
    assert rollups.differences() == []


class TestRebuildCommand:
    def spoil(self, alpha) -> None:
        record_usage("openai", "gpt-4o", TokenCount(1000, 500), "run", team=alpha)
        record_usage("openai", "gpt-4o-mini", TokenCount(1000, 500), "run", team=alpha)
        DailySpend.objects.filter(model="gpt-4o").update(runs=3, cost_usd=Decimal("0.39"))
        DailySpend.objects.filter(model="gpt-4o-mini").delete()

    def test_check_reports_each_difference_and_changes_nothing(self, alpha, openai):
        self.spoil(alpha)
        out = io.StringIO()
        with pytest.raises(SystemExit) as exit_status:
            call_command("rebuild_rollups", "--check", stdout=out)
        assert exit_status.value.code == 1
        report = out.getvalue()
        assert "2 roll-ups differ from the usage rows" in report
        assert "Alpha openai/gpt-4o: roll-up 3 runs $0.39, usage rows 1 run $0.0075" in report
        assert "Alpha openai/gpt-4o-mini: roll-up 0 runs $0.00, usage rows 1 run $0.00045" in report
        assert DailySpend.objects.get().cost_usd == Decimal("0.39")

    def test_rebuild_makes_the_rollups_equal_the_usage_rows(self, alpha, openai):
        self.spoil(alpha)
        out = io.StringIO()
        call_command("rebuild_rollups", stdout=out)
        assert "Rebuilt 2 roll-ups from 2 usage rows." in out.getvalue()
        assert {r.model: r.cost_usd for r in DailySpend.objects.all()} == {
            "gpt-4o": Decimal("0.0075"),
            "gpt-4o-mini": Decimal("0.00045"),
        }
        out = io.StringIO()
        call_command("rebuild_rollups", "--check", stdout=out)
        assert "The roll-ups equal the usage rows." in out.getvalue()


def test_the_migration_removes_duplicate_rollups_and_rebuilds_them(alpha, openai):
    """Roll-ups spoiled as PostgreSQL's NULL-distinct key let them be (duplicates for API usage,
    each over-counted) are rebuilt from the usage rows when the new key is added."""
    key = keys.create(alpha, "ci").key
    for _ in range(2):
        record_usage("openai", "gpt-4o", TokenCount(1000, 500), "api", team=alpha, api_key=key)
    executor = MigrationExecutor(connection)
    before = [("usage", "0007_run_team_active_reservation")]
    latest = executor.loader.graph.leaf_nodes("usage")
    executor.migrate(before)
    try:
        day = timezone.localdate()
        with connection.cursor() as cursor:
            for _ in range(3):  # the old key let these in
                cursor.execute(
                    "INSERT INTO usage_dailyspend (day, team_id, user_id, api_key_id, provider_id, model, runs, "
                    "input_tokens, output_tokens, cost_usd) VALUES (%s, %s, NULL, %s, 'openai', 'gpt-4o', 5, 1, 1, 0.39)",
                    [connection.ops.adapt_datefield_value(day), alpha.pk, key.pk],
                )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    row = DailySpend.objects.get()
    assert (row.runs, row.input_tokens, row.output_tokens, row.cost_usd) == (2, 2000, 1000, Decimal("0.015"))
