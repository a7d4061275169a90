"""Team roll-ups (TeamDailySpend) equal their daily roll-ups and usage rows, whoever writes DailySpend
(concurrent settlements, folds, rebuilds, edits by hand), and the spend page and budgets show the
same figures from them as from DailySpend; migration 0015 fills them from existing roll-ups."""

from __future__ import annotations

import io
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Team
from gateway import keys
from providers.base import TokenCount
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage import budgets, rollups, spend, team_rollups
from usage.models import Budget, DailySpend, TeamDailySpend
from usage.records import record_usage

pytestmark = pytest.mark.django_db(transaction=True)
MODELS = [("openai", "gpt-4o", "generation"), ("openai", "gpt-4o-mini", "generation")]
MODELS += [("openai", "text-embedding-3-small", "embeddings")]
SUMS = {
    "runs": Sum("runs"),
    "input": Sum("input_tokens"),
    "output": Sum("output_tokens"),
    "cost": Sum("cost_usd"),
}


@pytest.fixture
def openai(alpha, fake_openai):
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)


@pytest.fixture
def beta(db):
    return Team.objects.create(name="Beta")


def per_team_key(rows) -> dict:
    """{(day, team, provider, model, kind): (runs, input, output, cost to 12 places)}."""
    return {
        tuple(row[name] for name in team_rollups.KEY): (
            row["runs"],
            row["input"],
            row["output"],
            (row["cost"] or Decimal(0)).quantize(Decimal("1e-12")),
        )
        for row in rows.order_by().values(*team_rollups.KEY).annotate(**SUMS)
    }


def assert_in_step() -> None:
    """Team roll-ups == sums of DailySpend == sums of the usage rows, key by key."""
    team = per_team_key(TeamDailySpend.objects.all())
    assert team == per_team_key(DailySpend.objects.all())
    usage = {
        tuple(row[name] for name in team_rollups.KEY): (
            row["total_runs"],
            row["total_input"],
            row["total_output"],
            (row["total_cost"] or Decimal(0)).quantize(Decimal("1e-12")),
        )
        for row in rollups.usage_sums(key=team_rollups.KEY)
    }
    assert team == usage
    assert team_rollups.differences() == [] and rollups.differences() == []


def spend_everywhere(alpha, beta, alice, bob) -> list:
    """Usage of every combination of two teams, three spenders (two users and an API key), three
    models (both kinds) and three days, the first of them settled at once from 16 threads (each on
    its own connection, four to a roll-up row)."""
    keys_ = [keys.create(alpha, "pipeline").key, keys.create(beta, "etl").key]
    now = timezone.now()
    combinations = list(itertools.product((alpha, beta), (alice, bob, None), MODELS, range(3)))

    def settle(n: int) -> None:
        team, user, (provider, model, kind), days_ago = combinations[n]
        api_key = None if user else keys_[team == beta]
        record_usage(
            provider,
            model,
            TokenCount(1000 + n, 0 if kind == "embeddings" else 10 * n),
            "run" if user else "api",
            team=team,
            user=user,
            api_key=api_key,
            at=now - timedelta(days=days_ago),
            kind=kind,
        )

    barrier = threading.Barrier(16)

    def at_once(n: int) -> None:
        try:
            barrier.wait()
            settle(n % 4 * 9)  # alice's and bob's gpt-4o today, in both teams
        finally:
            connections.close_all()

    with ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(at_once, n) for n in range(16)]:
            future.result()
    for n in range(len(combinations)):
        settle(n)
    record_usage("openai", "gpt-4o", TokenCount(500, 50), "cli")  # no team at all
    return keys_


def test_concurrent_settlements_keep_the_team_rollups_equal_to_the_daily_ones(
    alpha, beta, alice, bob, openai
):
    spend_everywhere(alpha, beta, alice, bob)
    assert TeamDailySpend.objects.count() < DailySpend.objects.count()
    assert_in_step()


def test_the_spend_page_figures_are_those_of_the_daily_rollups_for_every_filter(
    alpha, beta, alice, bob, openai
):
    api_key = spend_everywhere(alpha, beta, alice, bob)[0]
    today = timezone.localdate()
    for teams in ([alpha.pk], [alpha.pk, beta.pk]):
        for provider, model, kind, key in (
            ("", "", "", None),
            ("openai", "", "", None),
            ("", "openai/gpt-4o", "", None),
            ("", "", "embeddings", None),
            ("", "", "generation", api_key.pk),
            ("openai", "openai/gpt-4o-mini", "generation", None),
        ):
            filters = spend.Filters(teams, today - timedelta(days=6), today, provider, model, key, kind)
            daily = DailySpend.objects.filter(team_id__in=teams, day__gte=filters.start, day__lte=today)
            daily = daily.filter(api_key_id=key) if key else daily
            before = list(
                daily.values("day", "provider_id", "model", "kind").annotate(
                    cost=Sum("cost_usd"),
                    runs=Sum("runs"),
                    input=Sum("input_tokens"),
                    output=Sum("output_tokens"),
                )
            )
            assert spend.breakdown(filters) == spend.breakdown(filters, before), filters
            assert spend.breakdown(filters).runs > 0, filters
            # The projection's sum (this month's rows of the filters).
            chosen = daily.filter(**{"provider_id": provider} if provider else {})
            chosen = chosen.filter(kind=kind) if kind else chosen
            chosen = chosen.filter(model=model.partition("/")[2]) if model else chosen
            total = Sum("cost_usd")
            assert filters.rows().aggregate(total=total) == chosen.aggregate(total=total), filters
        assert spend.used_models(teams, today - timedelta(days=6), today) == sorted(
            set(DailySpend.objects.filter(team_id__in=teams).values_list("provider_id", "model"))
        )


def test_team_and_provider_budgets_spend_the_same_from_the_team_rollups(alpha, beta, alice, bob, openai):
    api_key = spend_everywhere(alpha, beta, alice, bob)[0]
    now = timezone.now()
    periods = {kind: budgets.period(kind, now) for kind in ("day", "month")}
    month_start, month_end = periods["month"]
    for budget in (
        Budget(team=alpha, monthly_limit_usd=1),
        Budget(provider_id="openai", monthly_limit_usd=1),
        Budget(team=beta, provider_id="openai", monthly_limit_usd=1),
        Budget(team=alpha, api_key=api_key, monthly_limit_usd=1),
    ):
        rows = DailySpend.objects.filter(day__gte=month_start, day__lt=month_end)
        for column, value in (("team_id", budget.team_id), ("provider_id", budget.provider_id)):
            rows = rows.filter(**{column: value}) if value else rows
        rows = rows.filter(api_key_id=budget.api_key_id) if budget.api_key_id else rows
        expected = rows.aggregate(total=Sum("cost_usd"))["total"]
        assert budgets.spent(budget, periods)["month"] == budgets._money(expected) > 0, budget


def test_deleting_a_team_user_or_key_moves_its_team_rows_along(alpha, beta, alice, bob, openai):
    api_key = spend_everywhere(alpha, beta, alice, bob)[1]
    alice.delete()
    api_key.delete()
    assert_in_step()
    gone = beta.pk
    beta.delete()  # its rows join those without a team
    assert not TeamDailySpend.objects.filter(team_id=gone).exists()
    assert_in_step()


def test_rollups_edited_deleted_or_rebuilt_by_hand_carry_the_team_rows_along(alpha, beta, alice, bob, openai):
    spend_everywhere(alpha, beta, alice, bob)
    DailySpend.objects.filter(model="gpt-4o").update(runs=99, cost_usd=Decimal("1.5"))
    moved = DailySpend.objects.filter(model="gpt-4o-mini", team=alpha, day=timezone.localdate())
    moved.update(model="gpt-4.1", day="2020-01-01")
    DailySpend.objects.filter(kind="embeddings").delete()
    assert team_rollups.differences() == []
    assert set(TeamDailySpend.objects.values_list("model", flat=True)) == {"gpt-4o", "gpt-4o-mini", "gpt-4.1"}
    call_command("rebuild_rollups", stdout=io.StringIO())
    assert_in_step()


def test_check_reports_team_rows_that_differ_and_the_rebuild_refills_them(alpha, openai):
    record_usage("openai", "gpt-4o", TokenCount(1000, 500), "run", team=alpha)
    TeamDailySpend.objects.update(runs=3, cost_usd=Decimal("0.39"))  # only the triggers should write here
    out = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("rebuild_rollups", "--check", stdout=out)
    assert "1 team roll-ups differ from the daily roll-ups they sum" in out.getvalue()
    assert "Alpha openai/gpt-4o: team roll-up 3 runs $0.39, daily roll-ups 1 run $0.0075" in out.getvalue()
    call_command("rebuild_rollups", stdout=io.StringIO())
    assert_in_step()


def test_the_migration_fills_the_team_rollups_from_the_daily_ones(alpha, beta, alice, bob, openai):
    spend_everywhere(alpha, beta, alice, bob)
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("usage")
    executor.migrate([("usage", "0014_dailyspend_kind")])  # no team roll-ups, no triggers
    try:
        with connection.cursor() as cursor:  # written while there were none
            cursor.execute(
                "INSERT INTO usage_dailyspend (day, team_id, user_id, api_key_id, provider_id, model, kind, "
                "runs, input_tokens, output_tokens, cost_usd) "
                "VALUES (%s, %s, NULL, NULL, 'openai', 'o3', 'generation', 2, 10, 20, 0.25)",
                [connection.ops.adapt_datefield_value(timezone.localdate()), beta.pk],
            )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(latest)
    assert per_team_key(TeamDailySpend.objects.all()) == per_team_key(DailySpend.objects.all())
    assert TeamDailySpend.objects.get(model="o3").cost_usd == Decimal("0.25")
    assert team_rollups.differences() == []
    record_usage("openai", "gpt-4o", TokenCount(1000, 500), "run", team=alpha)  # the triggers are back
    assert team_rollups.differences() == []
