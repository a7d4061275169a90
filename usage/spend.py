"""Where the money goes: chart data from the daily roll-ups, never from the raw usage table."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.utils import timezone

from usage.models import DailySpend

ZERO = Decimal("0")


@dataclass(frozen=True)
class Filters:
    team_ids: list[int]
    start: date
    end: date  # inclusive
    provider: str = ""
    model: str = ""

    def rows(self, start: date | None = None, end: date | None = None) -> QuerySet[DailySpend]:
        rows = DailySpend.objects.filter(
            team_id__in=self.team_ids, day__gte=start or self.start, day__lte=end or self.end
        )
        if self.provider:
            rows = rows.filter(provider_id=self.provider)
        if self.model:
            rows = rows.filter(model=self.model)
        return rows


def this_month(today: date | None = None) -> tuple[date, date]:
    today = today or timezone.localdate()
    return today.replace(day=1), today.replace(day=calendar.monthrange(today.year, today.month)[1])


def by_provider(filters: Filters) -> list[tuple[str, Decimal]]:
    totals = filters.rows().values("provider_id").annotate(cost=Sum("cost_usd")).order_by("-cost")
    return [(row["provider_id"], row["cost"] or ZERO) for row in totals]


def by_model(filters: Filters) -> list[tuple[str, Decimal]]:
    totals = (
        filters.rows().values("provider_id", "model").annotate(cost=Sum("cost_usd")).order_by("-cost")[:20]
    )
    return [(f"{row['provider_id']}/{row['model']}", row["cost"] or ZERO) for row in totals]


def daily(filters: Filters) -> list[tuple[date, Decimal]]:
    totals = dict(filters.rows().values_list("day").annotate(cost=Sum("cost_usd")))
    days = (filters.end - filters.start).days + 1
    return [
        (filters.start + timedelta(n), totals.get(filters.start + timedelta(n), ZERO)) for n in range(days)
    ]


def projection(filters: Filters, today: date | None = None) -> tuple[Decimal, Decimal]:
    """(spent this month, projected month end): the month so far, at its average daily pace."""
    today = today or timezone.localdate()
    start, end = this_month(today)
    spent = filters.rows(start, today).aggregate(total=Sum("cost_usd"))["total"] or ZERO
    elapsed = (today - start).days + 1
    return spent, (spent / elapsed * end.day).quantize(Decimal("0.01"))


def totals(filters: Filters) -> dict:
    row = filters.rows().aggregate(cost=Sum("cost_usd"), runs=Sum("runs"), input=Sum("input_tokens"),
                                   output=Sum("output_tokens"))  # fmt: skip
    return {key: value or 0 for key, value in row.items()}
