"""Budgets: which apply to a run, what they have left, and the reservation that keeps concurrent
runs from overshooting them together.

A run reserves its maximum possible cost against every matching budget in one transaction before
it starts (SQLite takes its write lock at BEGIN IMMEDIATE; PostgreSQL locks the budget rows), and
settlement replaces the reservation with the real cost. The reservation is a lease: the running run
renews it (usage/leases.py); a crashed run's runs out within a minute and is recovered.
"""

from __future__ import annotations

import calendar
import decimal
import functools
from contextlib import ContextDecorator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from accounts.models import Team
from llmhub import conf, instances, statements, values
from llmhub.database import UNAVAILABLE
from providers import configuration
from providers.pricing import format_usd
from usage import spool, team_rollups
from usage.events import DatabaseUnavailable
from usage.models import Budget, DailySpend, Run

ZERO = Decimal("0")
SQLITE_DECIMAL = decimal.Context(prec=15)


class BudgetRefused(Exception):
    """A run its budget cannot cover; the message names the budget and what is left."""


class BudgetUnavailable(DatabaseUnavailable):
    """The database cannot be written (locked, read-only, unreachable), so no budget can be checked
    or held: the run does not start. The API answers 503 with retry-after, the page shows why."""


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


def lease_length() -> timedelta:
    """How long a reservation holds unless its run renews it (and when a dead run is recovered)."""
    return timedelta(seconds=conf.setting("LLMHUB_RUN_LEASE_SECONDS"))


def matching(team: Team, provider_id: str, api_key_id: int | None = None) -> QuerySet[Budget]:
    """Every budget whose scope covers a run of this team on this provider (and, from the API,
    the budget of the key it came with)."""
    key_scope = Q(api_key__isnull=True) | Q(api_key_id=api_key_id) if api_key_id else Q(api_key__isnull=True)
    return Budget.objects.select_related("team", "provider", "api_key").filter(
        (Q(team=team) | Q(team__isnull=True))
        & (Q(provider_id=provider_id) | Q(provider__isnull=True))
        & key_scope
    )


def definitions(team: Team, provider_id: str, api_key_id: int | None = None) -> list[Budget]:
    """The matching budgets as they are defined, from the process's snapshot of the configuration
    while it is current (read them, never change them). A reservation locks and reads its own."""
    return configuration.cached(
        ("budgets", team.pk, provider_id, api_key_id), lambda: list(matching(team, provider_id, api_key_id))
    )


def caps_for(team: Team, provider_id: str, api_key_id: int | None = None) -> Caps:
    """The tightest per-run caps among the matching budgets."""
    budgets = definitions(team, provider_id, api_key_id)
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
    return _period(kind, timezone.localdate(now or conf.now(), timezone.get_default_timezone()))


def _period(kind: str, today: date) -> tuple[date, date]:
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


# spent() and reserved() run three times for every run (reservation, alert check), so they are
# plain SQL: building the same aggregates with the ORM cost ~1 ms each on a 2-core machine, the
# SQL itself ~0.04 ms (bench/gateway.py, issue 8). Both work on SQLite and PostgreSQL. A
# reservation reads both in one statement (standings()).


def spent(budget: Budget, periods: dict[str, tuple[date, date]]) -> dict[str, Decimal]:
    """What the budget's scope has spent in each period ({"day": (start, end), ...}), in one query."""
    db = statements.db()
    sql, params = _spent(budget, periods, db)
    return _totals(periods, _one(sql, params, db))


def reserved(budget: Budget, now: datetime, excluding: Run | None = None) -> Decimal:
    """What running runs in the budget's scope hold. A run's reservation is for its current attempt:
    the model it is trying (model_used) once it has one, else the model it asked for."""
    db = statements.db()
    sql, params = _reserved(budget, now, excluding, db)
    return _money(_one(sql, params, db)[0])


def _spent(budget: Budget, periods: dict[str, tuple[date, date]], db) -> tuple[str, list]:
    """spent()'s SELECT: one sum a period, from the roll-ups of the budget's scope."""
    return _scoped(budget, len(periods), _bounds(periods, db.ops.adapt_datefield_value))


def _bounds(periods: dict[str, tuple[date, date]], adapt) -> tuple:
    """_spent_sql()'s dates: each period's start and end, then the first start and the last end."""
    bounds = [adapt(moment) for span in periods.values() for moment in span]
    first, last = min(s for s, _ in periods.values()), max(e for _, e in periods.values())
    return (*bounds, adapt(first), adapt(last))


def _scoped(budget: Budget, count: int, bounds: tuple) -> tuple[str, list]:
    scope = (budget.team_id, budget.provider_id, budget.api_key_id)
    return _spent_sql(count, *(bool(value) for value in scope)), [*bounds, *(v for v in scope if v)]


# _windows()'s answers by (day, kinds, the backends' operations class): a backend's date adapter
# depends on its class only (SQLite's str(), PostgreSQL's the date itself).
_WINDOWS: dict[tuple, tuple[dict[str, tuple[date, date]], tuple]] = {}


def _windows(today: date, kinds: tuple[str, ...], db) -> tuple[dict[str, tuple[date, date]], tuple]:
    """The periods of `kinds` containing `today`, and their _bounds() as `db` takes them: the same
    all day for every budget, computed once a day instead of twice a run (~40,000 instructions)."""
    key = (today, kinds, type(db.ops))
    found = _WINDOWS.get(key)
    if found is None:
        periods = {kind: _period(kind, today) for kind in kinds}
        found = periods, _bounds(periods, db.ops.adapt_datefield_value)
        if len(_WINDOWS) >= 16:  # yesterday's are not needed again
            _WINDOWS.clear()
        _WINDOWS[key] = found
    return found


@functools.lru_cache(maxsize=64)
def _spent_sql(periods: int, team: bool, provider: bool, api_key: bool) -> str:
    """_spent()'s statement, for a number of periods and a scope: the same for every run of it."""
    sums = ", ".join(["SUM(CASE WHEN day >= %s AND day < %s THEN cost_usd END)"] * periods)
    where = ["day >= %s", "day < %s"]
    where += [
        f"{column} = %s"
        for column, scoped in (("team_id", team), ("provider_id", provider), ("api_key_id", api_key))
        if scoped
    ]
    rollups = team_rollups.rollups_of(api_key)
    return f"SELECT {sums} FROM {rollups._meta.db_table} WHERE {' AND '.join(where)}"


def _reserved(budget: Budget, now: datetime, excluding: Run | None, db) -> tuple[str, list]:
    """reserved()'s SELECT: the sum of the holds in the budget's scope whose lease still runs."""
    params: list = [values.adapt_moment(now, db)]
    if budget.team_id:
        params.append(budget.team_id)
    if budget.provider_id:
        params.append(f"{budget.provider_id}/")
    if budget.api_key_id:
        params.append(budget.api_key_id)
    excluded = excluding is not None and bool(excluding.pk)
    if excluded:
        params.append(excluding.pk)
    prefix = len(budget.provider_id) + 1 if budget.provider_id else 0
    return _reserved_sql(bool(budget.team_id), prefix, bool(budget.api_key_id), excluded), params


@functools.lru_cache(maxsize=256)
def _reserved_sql(team: bool, prefix: int, api_key: bool, excluded: bool) -> str:
    """_reserved()'s statement for a scope (`prefix`: the length of "provider/", 0 for none)."""
    where = ["reserved_usd IS NOT NULL", "reservation_expires_at > %s"]
    if team:
        where.append("team_id = %s")
    if prefix:
        attempt = "CASE WHEN model_used = '' THEN model_requested ELSE model_used END"
        where.append(f"substr({attempt}, 1, {prefix}) = %s")
    if api_key:
        where.append("api_key_id = %s")
    if excluded:
        where.append("id <> %s")
    return f"SELECT SUM(reserved_usd) FROM {Run._meta.db_table} WHERE {' AND '.join(where)}"


def _one(sql: str, params: list, db) -> tuple:
    return statements.run(sql, params, statements.fetchone, db)


def _totals(periods: dict[str, tuple[date, date]], sums: tuple) -> dict[str, Decimal]:
    return {kind: _money(total) for kind, total in zip(periods, sums, strict=True)}


def _money(value) -> Decimal:
    """A sum as the database returns it: Decimal from PostgreSQL; from SQLite a float of at most 15
    significant digits (what it stores), turned into Decimal exactly as Django's own converter does."""
    if value is None:
        return ZERO
    if isinstance(value, Decimal):
        return value
    return SQLITE_DECIMAL.create_decimal_from_float(float(value))


def standings(
    budget: Budget, now: datetime | None = None, excluding: Run | None = None, with_reserved: bool = True
) -> list[Standing]:
    """The budget's limits in their current periods. Without `with_reserved`, what running runs
    hold is left out (counted as zero): alerts look at money spent only."""
    now = now or conf.now()
    limits = {
        kind: limit
        for kind, limit in (("day", budget.daily_limit_usd), ("month", budget.monthly_limit_usd))
        if limit is not None
    }
    if not limits:
        return []
    # The configured time zone's day, named: the current one is looked up in a context-local
    # (~6 µs), and a budget's periods never follow a time zone activated for a request.
    today = timezone.localdate(now, timezone.get_default_timezone())
    db = statements.db()
    periods, bounds = _windows(today, tuple(limits), db)
    spent_sql, params = _scoped(budget, len(periods), bounds)
    if with_reserved:  # read with the spend, in one statement: held, then a sum a period
        held_sql, held_params = _reserved(budget, now, excluding, db)
        sums = _one(_together(held_sql, spent_sql), [*held_params, *params], db)
        held, totals = _money(sums[0]), _totals(periods, sums[1:])
    else:
        held, totals = ZERO, _totals(periods, _one(spent_sql, params, db))
    return [Standing(budget, kind, limit, totals[kind], held) for kind, limit in limits.items()]


@functools.lru_cache(maxsize=256)
def _together(held_sql: str, spent_sql: str) -> str:
    return f"SELECT ({held_sql}), {spent_sql.removeprefix('SELECT ')}"


def database_writable() -> _DatabaseWritable:
    """Turns a database that cannot be written into BudgetUnavailable (a `with` block or a decorator)."""
    return _DatabaseWritable()


class _DatabaseWritable(ContextDecorator):
    """A class, not a @contextmanager generator: a request enters it twice, and a generator's costs
    ~7,000 instructions more a use (callgrind), a StopIteration made and caught at its end among them."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, fault: BaseException | None, traceback: Any) -> bool:
        if isinstance(fault, UNAVAILABLE):
            raise BudgetUnavailable() from fault
        return False


def reserve(run: Run, provider_id: str | None = None, also: tuple[str, ...] = ()) -> None:
    """Hold the run's maximum cost against every matching budget, or refuse it, atomically
    (BudgetRefused; BudgetUnavailable when the database cannot be written). The run's fields named
    in `also` are saved with the hold, in the same UPDATE; a run not saved yet is saved with its
    hold, or not at all when refused."""
    if spool.pending():  # spend that waited for the database counts before more money is held
        from usage import records  # records imports alerts, which imports this module

        records.replay_spool()
    with database_writable(), transaction.atomic():
        budgets = _locked(run.team_id, provider_id or run.provider_id, run.api_key_id)
        limited = [b for b in budgets if b.daily_limit_usd is not None or b.monthly_limit_usd is not None]
        now = conf.now()
        if not limited:
            # Nothing to hold, but the lease still tells a live run from a dead one.
            run.reserved_usd, run.reservation_expires_at = None, now + lease_length()
            _save_hold(run, also)
            return
        if run.max_cost_usd is None:
            raise BudgetRefused(
                f"{run.model_requested} has no known price and the {label(limited[0])} budget applies: "
                "an admin sets its price before it can run."
            )
        for budget in limited:
            for standing in standings(budget, now, excluding=run):
                if run.max_cost_usd > standing.left:
                    name = "Daily" if standing.period == "day" else "Monthly"
                    raise BudgetRefused(
                        f"{name} {label(budget)} budget: {format_usd(standing.left)} of "
                        f"{format_usd(standing.limit)} left; this run may cost up to {format_usd(run.max_cost_usd)}."
                    )
        run.reserved_usd, run.reservation_expires_at = run.max_cost_usd, now + lease_length()
        _save_hold(run, also)


def _locked(team_id: int, provider_id: str, api_key_id: int | None) -> list[Budget]:
    """matching()'s budgets, in the order of their keys, each row locked until the transaction ends
    (PostgreSQL; SQLite's BEGIN IMMEDIATE has locked the database). Every run reads them, so in plain
    SQL (llmhub/statements.py); their team, provider and key are loaded only if a refusal names them."""
    team, provider, key = (statements.column(Budget, name) for name in ("team", "provider", "api_key"))
    where = [f"({team} = %s OR {team} IS NULL)", f"({provider} = %s OR {provider} IS NULL)"]
    params: list = [team_id, provider_id]
    if api_key_id:
        where.append(f"({key} IS NULL OR {key} = %s)")
        params.append(api_key_id)
    else:
        where.append(f"{key} IS NULL")
    db = statements.db()
    lock = " FOR UPDATE" if db.features.has_select_for_update else ""
    sql = (
        f"SELECT {statements.columns(Budget)} FROM {statements.table(Budget)} "
        f"WHERE {' AND '.join(where)} ORDER BY {statements.column(Budget, 'id')}{lock}"
    )
    rows = statements.run(sql, params, statements.fetchall, db)
    return [instances.load(Budget, row, wrapper=db) for row in rows]


def _save_hold(run: Run, also: tuple[str, ...] = ()) -> None:
    """The hold written with the model it is for (see reserved()). A run not saved yet (the API's,
    reserved in the trip that admitted it) is written whole, hold included: its INSERT in this
    transaction instead of one committed on its own before it and an UPDATE here (issue 16)."""
    if run.pk is None:
        statements.insert(run)
        return
    fields = ("reserved_usd", "model_used", "reservation_expires_at", *also)
    statements.update(Run, run.pk, {name: getattr(run, name) for name in fields})


def current_standings(now: datetime | None = None) -> list[Standing]:
    """Every limited budget's standings in its current periods, in three queries whatever the number
    of budgets (for /metrics): the month's spend grouped by scope and the active reservations are
    read once, then summed per budget with the scope rules of spent() and reserved()."""
    now = now or conf.now()
    limited = list(
        Budget.objects.select_related("team", "provider", "api_key")
        .filter(Q(daily_limit_usd__isnull=False) | Q(monthly_limit_usd__isnull=False))
        .order_by("pk")
    )
    if not limited:
        return []
    (day, _), (month_start, month_end) = period("day", now), period("month", now)
    spend = list(
        DailySpend.objects.filter(day__gte=month_start, day__lt=month_end)
        .values_list("team_id", "provider_id", "api_key_id")
        .annotate(month=Sum("cost_usd"), today=Sum("cost_usd", filter=Q(day__gte=day)))
    )
    holds = [
        (team_id, (used or requested).partition("/")[0], key_id, amount)
        for team_id, used, requested, key_id, amount in Run.objects.filter(
            reserved_usd__isnull=False, reservation_expires_at__gt=now
        ).values_list("team_id", "model_used", "model_requested", "api_key_id", "reserved_usd")
    ]
    result = []
    for budget in limited:
        mine = [row for row in spend if _covers(budget, *row[:3])]
        held = sum((amount for *scope, amount in holds if _covers(budget, *scope)), ZERO)
        for kind, limit, column in (
            ("day", budget.daily_limit_usd, 4),
            ("month", budget.monthly_limit_usd, 3),
        ):
            if limit is not None:
                spent_total = sum((_money(row[column]) for row in mine), ZERO)
                result.append(Standing(budget, kind, limit, spent_total, held))
    return result


def _covers(budget: Budget, team_id: int | None, provider_id: str, api_key_id: int | None) -> bool:
    return (
        (not budget.team_id or team_id == budget.team_id)
        and (not budget.provider_id or provider_id == budget.provider_id)
        and (not budget.api_key_id or api_key_id == budget.api_key_id)
    )
