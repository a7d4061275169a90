"""Budgets: which apply to a run, what they have left, and the reservation that keeps concurrent
runs from overshooting them together.

A run reserves its maximum possible cost against every matching budget in one transaction before
it starts (SQLite takes its write lock at BEGIN IMMEDIATE; PostgreSQL locks the budget rows), and
settlement replaces the reservation with the real cost. A crashed run's reservation expires.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from accounts.models import Team
from providers.pricing import format_usd
from usage.models import Budget, DailySpend, Run

RESERVATION_TTL = timedelta(hours=1)
ZERO = Decimal("0")


class BudgetRefused(Exception):
    """A run its budget cannot cover; the message names the budget and what is left."""


@dataclass(frozen=True)
class Caps:
    soft: int | None  # above this, the run page warns before the run starts
    hard: int | None  # the most output tokens a run may ask for, and may stream
    soft_from: Budget | None = None
    hard_from: Budget | None = None


@dataclass(frozen=True)
class Standing:
    """One limit of a budget in its current period."""

    budget: Budget
    period: str  # "day" or "month"
    limit: Decimal
    spent: Decimal
    reserved: Decimal

    @property
    def left(self) -> Decimal:
        return max(ZERO, self.limit - self.spent - self.reserved)

    @property
    def share(self) -> Decimal:
        return (self.spent + self.reserved) / self.limit if self.limit else Decimal("1")


def matching(team: Team, provider_id: str, api_key_id: int | None = None) -> QuerySet[Budget]:
    """Every budget whose scope covers a run of this team on this provider (and, from the API,
    the budget of the key it came with)."""
    key_scope = Q(api_key__isnull=True) | Q(api_key_id=api_key_id) if api_key_id else Q(api_key__isnull=True)
    return Budget.objects.select_related("team", "provider", "api_key").filter(
        (Q(team=team) | Q(team__isnull=True))
        & (Q(provider_id=provider_id) | Q(provider__isnull=True))
        & key_scope
    )


def caps_for(team: Team, provider_id: str, api_key_id: int | None = None) -> Caps:
    """The tightest per-run caps among the matching budgets."""
    budgets = list(matching(team, provider_id, api_key_id))
    soft = min(
        (b for b in budgets if b.per_run_soft_cap_tokens),
        key=lambda b: b.per_run_soft_cap_tokens,
        default=None,
    )
    hard = min(
        (b for b in budgets if b.per_run_hard_cap_tokens),
        key=lambda b: b.per_run_hard_cap_tokens,
        default=None,
    )
    return Caps(
        soft=soft.per_run_soft_cap_tokens if soft else None,
        hard=hard.per_run_hard_cap_tokens if hard else None,
        soft_from=soft,
        hard_from=hard,
    )


def period(kind: str, now: datetime | None = None) -> tuple[date, date]:
    """[start, end) of the day or month containing `now`, in the configured time zone."""
    today = timezone.localdate(now or timezone.now())
    if kind == "day":
        return today, today + timedelta(days=1)
    days = calendar.monthrange(today.year, today.month)[1]
    start = today.replace(day=1)
    return start, start + timedelta(days=days)


def label(budget: Budget) -> str:
    if budget.api_key_id:
        return f"API key {budget.api_key.name}"
    if budget.team_id and budget.provider_id:
        return f"{budget.team.name} on {budget.provider.display_name}"
    return budget.provider.display_name if budget.provider_id else f"{budget.team.name} team"


def spent(budget: Budget, periods: dict[str, tuple[date, date]]) -> dict[str, Decimal]:
    """What the budget's scope has spent in each period ({"day": (start, end), ...}), in one query."""
    rows = DailySpend.objects.filter(day__gte=min(s for s, _ in periods.values()),
                                     day__lt=max(e for _, e in periods.values()))  # fmt: skip
    if budget.team_id:
        rows = rows.filter(team_id=budget.team_id)
    if budget.provider_id:
        rows = rows.filter(provider_id=budget.provider_id)
    if budget.api_key_id:
        rows = rows.filter(api_key_id=budget.api_key_id)
    # (aliases must not be "day": that would shadow the column in the filters)
    sums = {
        f"in_{kind}": Sum("cost_usd", filter=Q(day__gte=start, day__lt=end))
        for kind, (start, end) in periods.items()
    }
    totals = rows.aggregate(**sums)
    return {kind: totals[f"in_{kind}"] or ZERO for kind in periods}


def reserved(budget: Budget, now: datetime, excluding: Run | None = None) -> Decimal:
    runs = Run.objects.filter(reserved_usd__isnull=False, reservation_expires_at__gt=now)
    if budget.team_id:
        runs = runs.filter(team_id=budget.team_id)
    if budget.provider_id:
        runs = runs.filter(model_requested__startswith=f"{budget.provider_id}/")
    if budget.api_key_id:
        runs = runs.filter(api_key_id=budget.api_key_id)
    if excluding is not None:
        runs = runs.exclude(pk=excluding.pk)
    return runs.aggregate(total=Sum("reserved_usd"))["total"] or ZERO


def standings(budget: Budget, now: datetime | None = None, excluding: Run | None = None,
              with_reserved: bool = True) -> list[Standing]:  # fmt: skip
    """The budget's limits in their current periods. Without `with_reserved`, what running runs
    hold is left out (counted as zero): alerts look at money spent only."""
    now = now or timezone.now()
    limits = {kind: limit for kind, limit in (("day", budget.daily_limit_usd), ("month", budget.monthly_limit_usd))
              if limit is not None}  # fmt: skip
    if not limits:
        return []
    held = reserved(budget, now, excluding) if with_reserved else ZERO  # the same for both periods
    totals = spent(budget, {kind: period(kind, now) for kind in limits})
    return [Standing(budget, kind, limit, totals[kind], held) for kind, limit in limits.items()]


def reserve(run: Run, provider_id: str | None = None) -> None:
    """Hold the run's maximum cost against every matching budget, or refuse it, atomically."""
    with transaction.atomic():
        budgets = list(
            matching(run.team, provider_id or run.provider_id, run.api_key_id)
            .select_for_update()
            .order_by("pk")
        )
        limited = [b for b in budgets if b.daily_limit_usd is not None or b.monthly_limit_usd is not None]
        if not limited:
            run.reserved_usd = run.reservation_expires_at = None
            return
        if run.max_cost_usd is None:
            raise BudgetRefused(
                f"{run.model_requested} has no known price and the {label(limited[0])} budget applies: "
                "an admin sets its price before it can run."
            )
        now = timezone.now()
        for budget in limited:
            for standing in standings(budget, now, excluding=run):
                if run.max_cost_usd > standing.left:
                    name = "Daily" if standing.period == "day" else "Monthly"
                    raise BudgetRefused(
                        f"{name} {label(budget)} budget: {format_usd(standing.left)} of "
                        f"{format_usd(standing.limit)} left; this run may cost up to {format_usd(run.max_cost_usd)}."
                    )
        run.reserved_usd, run.reservation_expires_at = run.max_cost_usd, now + RESERVATION_TTL
        if run.pk:
            Run.objects.filter(pk=run.pk).update(reserved_usd=run.reserved_usd,
                                                 reservation_expires_at=run.reservation_expires_at)  # fmt: skip
