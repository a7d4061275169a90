"""Budgets that are never overshot: periods, reservations, refusals, alerts, and concurrency."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import sync_to_async
from django.core import mail
from django.utils import timezone

from audit.models import AuditEntry
from llmhub import statements
from providers.base import Message, TokenCount
from providers.models import Price
from providers.pricing import format_usd
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage import budgets, rollups, runs
from usage.events import Ended
from usage.models import Budget, BudgetAlert, DailySpend, Run, UsageRecord
from usage.records import record_usage

ASK = [Message("user", "Write about budgets.")]


@pytest.fixture
def openai(alpha, fake_openai):
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)


async def finish(run: Run) -> Run:
    async for event in runs.stream(run):
        if isinstance(event, Ended):
            run = event.run
    return run


@pytest.mark.django_db
class TestPeriods:
    def test_a_month_ends_at_midnight_in_the_configured_time_zone(self, settings):
        settings.TIME_ZONE = "America/New_York"
        late = datetime(2026, 12, 1, 4, 30, tzinfo=UTC)  # still 30 November, 23:30 in New York
        assert budgets.period("month", late) == (date(2026, 11, 1), date(2026, 12, 1))
        assert budgets.period("day", late) == (date(2026, 11, 30), date(2026, 12, 1))
        settings.TIME_ZONE = "UTC"
        assert budgets.period("month", late) == (date(2026, 12, 1), date(2027, 1, 1))

    def test_february_and_leap_years(self):
        assert budgets.period("month", datetime(2028, 2, 29, 12, tzinfo=UTC)) == (
            date(2028, 2, 1),
            date(2028, 3, 1),
        )
        assert budgets.period("month", datetime(2027, 2, 10, tzinfo=UTC))[1] == date(2027, 3, 1)

    def test_usage_is_rolled_up_on_the_local_day(self, settings, alpha, openai):
        settings.TIME_ZONE = "Asia/Tokyo"
        record = record_usage("openai", "gpt-4o", TokenCount(1000, 500), "cli", team=alpha)
        day = DailySpend.objects.get()
        assert day.day == timezone.localdate(record.created_at)
        assert day.cost_usd == Decimal("0.0075") and day.runs == 1
        record_usage("openai", "gpt-4o", TokenCount(1000, 500), "cli", team=alpha)
        assert DailySpend.objects.get().cost_usd == Decimal("0.015")

    def test_spend_before_the_period_does_not_count(self, alpha, openai):
        budget = Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("10"))
        start, _ = budgets.period("month")
        DailySpend.objects.create(
            day=start - timedelta(days=1),
            team=alpha,
            provider_id="openai",
            model="gpt-4o",
            cost_usd=Decimal("9"),
        )
        DailySpend.objects.create(
            day=start, team=alpha, provider_id="openai", model="gpt-4o", cost_usd=Decimal("2")
        )
        (standing,) = budgets.standings(budget)
        assert standing.spent == Decimal("2") and standing.left == Decimal("8")

    @pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "America/Adak", "UTC"])
    def test_a_standings_periods_turn_at_the_configured_time_zones_midnight(
        self, settings, zone, alpha, openai
    ):
        """The periods kept for the day (usage/budgets.py's _windows()) change at that zone's
        midnight, the month's on its first day, and follow a change of time zone at once."""
        settings.TIME_ZONE = zone
        budget = Budget.objects.create(
            team=alpha, daily_limit_usd=Decimal("50"), monthly_limit_usd=Decimal("100")
        )
        costs = {
            date(2026, 12, 30): Decimal("1"),
            date(2026, 12, 31): Decimal("2"),
            date(2027, 1, 1): Decimal("4"),
        }
        for day, cost in costs.items():
            DailySpend.objects.create(
                day=day, team=alpha, provider_id="openai", model="gpt-4o", cost_usd=cost
            )
        midnight = datetime(2027, 1, 1, tzinfo=ZoneInfo(zone))

        def spent(now: datetime) -> dict[str, Decimal]:
            return {standing.period: standing.spent for standing in budgets.standings(budget, now)}

        assert spent(midnight - timedelta(days=1, microseconds=1)) == {
            "day": Decimal("1"),
            "month": Decimal("3"),
        }
        assert spent(midnight - timedelta(microseconds=1)) == {"day": Decimal("2"), "month": Decimal("3")}
        assert spent(midnight) == {"day": Decimal("4"), "month": Decimal("4")}
        assert spent(midnight.astimezone(UTC)) == {"day": Decimal("4"), "month": Decimal("4")}
        settings.TIME_ZONE = "Etc/GMT+12"  # 12 hours behind UTC: still December there
        day = midnight.astimezone(ZoneInfo("Etc/GMT+12")).date()
        assert spent(midnight) == {"day": costs[day], "month": Decimal("3")}


@pytest.mark.django_db
class TestReservations:
    def test_a_run_its_budget_cannot_cover_is_refused_with_what_is_left(self, alice, alpha, openai):
        Budget.objects.create(provider=openai, monthly_limit_usd=Decimal("0.42"))
        DailySpend.objects.create(
            day=timezone.localdate(),
            team=alpha,
            provider_id="openai",
            model="gpt-4o",
            cost_usd=Decimal("0.40"),
        )
        run = runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 4000)
        with pytest.raises(budgets.BudgetRefused) as refused:
            budgets.reserve(run)
        assert str(refused.value) == (
            f"Monthly OpenAI budget: $0.02 of $0.42 left; this run may cost up to {format_usd(run.max_cost_usd)}."
        )

    def test_reservations_count_against_the_budget_until_they_expire(self, alice, alpha, openai):
        run = runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 1000)
        Budget.objects.create(team=alpha, daily_limit_usd=run.max_cost_usd * Decimal("1.5"))
        budgets.reserve(run)
        second = runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 1000)
        with pytest.raises(budgets.BudgetRefused, match="Daily Alpha team budget"):
            budgets.reserve(second)
        Run.objects.filter(pk=run.pk).update(reservation_expires_at=timezone.now() - timedelta(seconds=1))
        budgets.reserve(second)  # the crashed run's hold has expired

    def test_a_standing_reads_spend_and_holds_in_one_statement_as_spent_and_reserved_read_them(
        self, alice, alpha, openai
    ):
        budget = Budget.objects.create(
            team=alpha, daily_limit_usd=Decimal("40"), monthly_limit_usd=Decimal("50")
        )
        record_usage("openai", "gpt-4o", TokenCount(1000, 500), "cli", team=alpha)
        held, other = (runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 1000) for _ in range(2))
        budgets.reserve(held)
        budgets.reserve(other)
        now = timezone.now()
        day, month = budgets.period("day", now), budgets.period("month", now)
        spent = budgets.spent(budget, {"day": day, "month": month})
        expected = [
            budgets.Standing(budget, "day", Decimal("40"), spent["day"], other.reserved_usd),
            budgets.Standing(budget, "month", Decimal("50"), spent["month"], other.reserved_usd),
        ]
        assert budgets.reserved(budget, now, excluding=held) == other.reserved_usd > 0
        assert spent["day"] == spent["month"] == UsageRecord.objects.get().cost_usd > 0
        assert budgets.standings(budget, now, excluding=held) == expected
        assert budgets.standings(budget, now, with_reserved=False) == [
            budgets.Standing(budget, kind, limit, spent[kind], Decimal("0"))
            for kind, limit in (("day", Decimal("40")), ("month", Decimal("50")))
        ]

    def test_a_fallback_attempt_holds_money_against_the_fallback_providers_budget(
        self, alice, alpha, openai, fake_anthropic
    ):
        anthropic = registry.save(
            "anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=fake_anthropic.url, team=alpha
        )
        on_openai = Budget.objects.create(provider=openai, monthly_limit_usd=Decimal("50"))
        on_anthropic = Budget.objects.create(provider=anthropic, monthly_limit_usd=Decimal("50"))
        run = runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 1000)
        run.model_used = "anthropic/claude-haiku-4-5"  # OpenAI failed; the run now tries Claude
        budgets.reserve(run, "anthropic")
        now = timezone.now()
        assert budgets.reserved(on_anthropic, now) == run.reserved_usd > 0
        assert budgets.reserved(on_openai, now) == 0

    def test_an_unpriced_model_under_a_budget_is_refused_until_priced(self, alice, alpha, openai):
        Price.objects.filter(model_id="openai/o1").delete()
        Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("100"))
        run = runs.create_run(alice, alpha, "openai/o1", ASK, 100)
        with pytest.raises(
            budgets.BudgetRefused, match="has no known price and the Alpha team budget applies"
        ):
            budgets.reserve(run)

    def test_budgets_of_other_scopes_do_not_apply(self, alice, alpha, openai, charlie):
        Budget.objects.create(team=charlie.memberships.get().team, monthly_limit_usd=Decimal("0"))
        run = runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 100)
        budgets.reserve(run)  # not refused
        assert run.reserved_usd is None  # no budget of Alpha's applies: nothing to hold


@pytest.mark.django_db(transaction=True)
async def test_settling_replaces_the_reservation_with_the_real_cost(alice, alpha, openai):
    await Budget.objects.acreate(team=alpha, monthly_limit_usd=Decimal("5"))
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o-mini", ASK, 2000)
    run = await finish(run)
    assert run.status == Run.Status.COMPLETED
    assert run.reserved_usd is None and run.cost_usd < run.max_cost_usd
    budget = await Budget.objects.select_related("team", "provider").aget(team=alpha)
    (standing,) = await sync_to_async(budgets.standings)(budget)
    assert standing.spent == run.cost_usd and standing.reserved == 0


@pytest.mark.django_db(transaction=True)
async def test_a_refused_run_says_why_and_never_reaches_the_provider(alice, alpha, openai, fake_openai):
    await Budget.objects.acreate(provider=openai, daily_limit_usd=Decimal("0"))
    run = await finish(await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o", ASK, 100))
    assert run.status == Run.Status.FAILED
    assert run.error_message.startswith("Daily OpenAI budget: $0.00 of $0.00 left; this run may cost up to $")
    assert not [r for r in fake_openai.requests if r.path.endswith("/chat/completions")]


@pytest.mark.django_db
class TestAlerts:
    def test_crossing_the_threshold_alerts_once_per_period(
        self, alice, alpha, openai, django_capture_on_commit_callbacks
    ):
        alice.email = "alice@example.com"
        alice.save()
        Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("0.01"))  # 80 % is $0.008
        with django_capture_on_commit_callbacks(execute=True):
            record_usage("openai", "gpt-4o", TokenCount(1000, 500), "run", team=alpha)  # $0.0075: 75 %
        assert not BudgetAlert.objects.exists()
        with django_capture_on_commit_callbacks(execute=True):
            record_usage("openai", "gpt-4o", TokenCount(100, 0), "run", team=alpha)  # $0.00775 + $0.00025
            record_usage("openai", "gpt-4o", TokenCount(1000, 0), "run", team=alpha)
        alert = BudgetAlert.objects.get()
        assert alert.period == "month"
        assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.com"]
        assert "Alpha team budget is at" in mail.outbox[0].subject
        assert AuditEntry.objects.filter(action="budget_alert").count() == 1

    def test_the_banner_shows_the_alert_to_team_admins(self, alice_client, alpha, openai):
        Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("0.01"))
        record_usage("openai", "gpt-4o", TokenCount(10000, 5000), "run", team=alpha)  # $0.075
        assert "The Alpha team budget is at 750 %" in alice_client.get("/").content.decode()


@pytest.mark.django_db(transaction=True)
async def test_concurrent_runs_never_overshoot_a_budget_together(alice, alpha, openai, fake_openai):
    """100 runs at once on a budget that covers 10: at most 10 run, and the settled total stays in it."""
    fake_openai.realistic = True  # exact input counts: a run's real cost is its reserved maximum
    fake_openai.reply_text = "word " * 2100  # longer than max_tokens: every run uses all of it
    create = sync_to_async(runs.create_run)
    pending = [await create(alice, alpha, "openai/gpt-4o", ASK, 2000) for _ in range(100)]
    each = pending[0].max_cost_usd
    limit = (each * Decimal("10.5")).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
    assert limit // each == 10  # the budget covers exactly ten runs
    await Budget.objects.acreate(team=alpha, monthly_limit_usd=limit)
    done = await asyncio.gather(*(finish(run) for run in pending))
    completed = [run for run in done if run.status == Run.Status.COMPLETED]
    refused = [run for run in done if run.status == Run.Status.FAILED]
    assert 1 <= len(completed) <= 10
    assert len(completed) + len(refused) == 100
    assert all(run.error_message.startswith("Monthly Alpha team budget: $") for run in refused)
    total = sum([r.cost_usd async for r in UsageRecord.objects.filter(team=alpha)], Decimal("0"))
    assert total <= limit


def test_budget_days_are_the_configured_time_zones_whatever_time_zone_is_active(settings):
    settings.TIME_ZONE = "UTC"
    late = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)  # February already in Kolkata
    db = statements.db()
    with timezone.override("Asia/Kolkata"):
        assert budgets.period("day", late) == (date(2026, 1, 31), date(2026, 2, 1))
        assert budgets.period("month", late) == (date(2026, 1, 1), date(2026, 2, 1))
        rolled_up = rollups.values(UsageRecord(created_at=late), db)[0]
    assert rolled_up == db.ops.adapt_datefield_value(date(2026, 1, 31))
