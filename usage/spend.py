"""Where the money goes: chart data from the daily roll-ups, never from the raw usage table: the
team roll-ups (TeamDailySpend, one row per day, team, provider, model and kind), or DailySpend when
one API key is chosen (only it has the key; it also has one row per user).

One grouped query (day × provider × model × kind of call) over the range feeds every chart, total
and the list of models used; the sums per provider, per model and per day are then made from those few rows. The same filters pick
the runs listed under the charts and the rows of the CSV export, always on the model a run used.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from functools import reduce
from operator import or_

from django.db.models import QuerySet, Sum
from django.utils import timezone

from usage import team_rollups
from usage.models import Run, TeamDailySpend, UsageRecord

ZERO = Decimal("0")


@dataclass(frozen=True)
class Filters:
    team_ids: list[int]
    start: date
    end: date  # inclusive
    provider: str = ""
    model: str = ""  # "provider/model": the model a run used
    api_key: int | None = None  # only what this API key spent
    kind: str = ""  # a CallKind value: only generations (chat) or only embeddings

    def rows(self, start: date | None = None, end: date | None = None) -> QuerySet:
        rows = team_rollups.rollups_of(self.api_key).objects.filter(
            team_id__in=self.team_ids, day__gte=start or self.start, day__lte=end or self.end
        )
        if self.provider:
            rows = rows.filter(provider_id=self.provider)
        if self.model:
            provider, _, model = self.model.partition("/")
            rows = rows.filter(provider_id=provider, model=model)
        if self.api_key:
            rows = rows.filter(api_key_id=self.api_key)
        if self.kind:
            rows = rows.filter(kind=self.kind)
        return rows

    def usage_rows(self) -> QuerySet[UsageRecord]:
        """The usage rows behind the roll-ups, for the CSV export."""
        start, end = self.moments()
        rows = UsageRecord.objects.filter(
            team_id__in=self.team_ids, created_at__gte=start, created_at__lt=end
        )
        if self.provider:
            rows = rows.filter(provider_id=self.provider)
        if self.model:
            provider, _, model = self.model.partition("/")
            rows = rows.filter(provider_id=provider, model=model)
        if self.api_key:
            rows = rows.filter(api_key_id=self.api_key)
        if self.kind:
            rows = rows.filter(kind=self.kind)
        return rows

    def moments(self) -> tuple[datetime, datetime]:
        """[start, end) of the range as aware datetimes in the configured time zone (index-friendly)."""
        zone = timezone.get_current_timezone()
        return (
            datetime.combine(self.start, time.min, zone),
            datetime.combine(self.end + timedelta(days=1), time.min, zone),
        )


@dataclass(frozen=True)
class Breakdown:
    by_provider: list[tuple[str, Decimal]]
    by_model: list[tuple[str, Decimal]]
    daily: list[tuple[date, Decimal]]
    cost: Decimal
    runs: int
    input_tokens: int
    output_tokens: int


def this_month(today: date | None = None) -> tuple[date, date]:
    today = today or timezone.localdate()
    return today.replace(day=1), today.replace(day=calendar.monthrange(today.year, today.month)[1])


def grouped(filters: Filters) -> list[dict]:
    """Day × provider × model × kind sums over the range, before the provider, model and kind
    filters: one query that gives both the figures (breakdown) and the models used (the filter's
    options)."""
    rows = team_rollups.rollups_of(filters.api_key).objects.filter(
        team_id__in=filters.team_ids, day__gte=filters.start, day__lte=filters.end
    )
    if filters.api_key:
        rows = rows.filter(api_key_id=filters.api_key)
    return list(
        rows.values("day", "provider_id", "model", "kind").annotate(
            cost=Sum("cost_usd"), runs=Sum("runs"), input=Sum("input_tokens"), output=Sum("output_tokens")
        )
    )


def breakdown(filters: Filters, rows: list[dict] | None = None) -> Breakdown:
    """The figures of the filters, from grouped() rows (queried when not given)."""
    rows = grouped(filters) if rows is None else rows
    providers: dict[str, Decimal] = defaultdict(Decimal)
    models: dict[str, Decimal] = defaultdict(Decimal)
    days: dict[date, Decimal] = defaultdict(Decimal)
    runs = input_tokens = output_tokens = 0
    for row in rows:
        if filters.provider and row["provider_id"] != filters.provider:
            continue
        if filters.model and f"{row['provider_id']}/{row['model']}" != filters.model:
            continue
        if filters.kind and row["kind"] != filters.kind:
            continue
        cost = row["cost"] or ZERO
        providers[row["provider_id"]] += cost
        models[f"{row['provider_id']}/{row['model']}"] += cost
        days[row["day"]] += cost
        runs, input_tokens, output_tokens = (
            runs + row["runs"],
            input_tokens + row["input"],
            output_tokens + row["output"],
        )
    span = (filters.end - filters.start).days + 1
    return Breakdown(
        by_provider=sorted(providers.items(), key=lambda item: -item[1]),
        by_model=sorted(models.items(), key=lambda item: -item[1])[:20],
        daily=[
            (filters.start + timedelta(n), days.get(filters.start + timedelta(n), ZERO)) for n in range(span)
        ],
        cost=sum(providers.values(), ZERO),
        runs=runs,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )


def projection(filters: Filters, today: date | None = None) -> tuple[Decimal, Decimal]:
    """(spent this month, projected month end): the month so far at its average daily pace, never
    less than what is spent already."""
    today = today or timezone.localdate()
    start, end = this_month(today)
    spent = filters.rows(start, today).aggregate(total=Sum("cost_usd"))["total"] or ZERO
    elapsed = (today - start).days + 1
    return spent, max(spent, spent / elapsed * end.day)


def used_models(team_ids: list[int], start: date, end: date) -> list[tuple[str, str]]:
    """(provider, model) pairs with spend in the range, whatever other filter is chosen: a
    dropdown never shrinks to the value it is filtered on."""
    rows = TeamDailySpend.objects.filter(team_id__in=team_ids, day__gte=start, day__lte=end)
    return sorted(set(rows.values_list("provider_id", "model").distinct()))


def runs(filters: Filters, visible: list[QuerySet[Run]]) -> QuerySet[Run]:
    """The runs behind the figures, newest first: started ones only (a run waiting for its Start
    button spent nothing), on the model they used. `visible`: what the user may see, per team."""
    if not visible:
        return Run.objects.none()
    start, end = filters.moments()
    chosen = reduce(or_, visible).filter(
        team_id__in=filters.team_ids, started_at__isnull=False, created_at__gte=start, created_at__lt=end
    )
    if filters.provider:
        chosen = chosen.filter(model_used__startswith=f"{filters.provider}/")
    if filters.model:
        chosen = chosen.filter(model_used=filters.model)
    if filters.api_key:
        chosen = chosen.filter(api_key_id=filters.api_key)
    if filters.kind:
        chosen = chosen.filter(kind=filters.kind)
    return chosen.select_related("user", "automation", "api_key").order_by("-created_at", "-pk")
