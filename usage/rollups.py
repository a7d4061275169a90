"""Daily roll-ups: usage summed per day (in the configured time zone), team, user, API key, provider,
model and kind of call, kept equal to the usage rows they sum. Budgets, alerts and the spend page read them.

A settlement adds to its row with one INSERT ... ON CONFLICT ... DO UPDATE (SQLite and PostgreSQL
alike): atomic without a read first, and a single row per settlement, so concurrent settlements
never lock roll-ups in different orders. `rebuild()` recomputes every row and `differences()`
compares them with the usage rows (`manage.py rebuild_rollups [--check]`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, Model, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from llmhub import statements
from usage.models import DailySpend, UsageRecord

KEY = ("day", "team_id", "user_id", "api_key_id", "provider_id", "model", "kind")
TOTALS = ("runs", "input_tokens", "output_tokens", "cost_usd")
# DailySpend's unique index (usage/models.py), spelled the way an ON CONFLICT target must match it.
CONFLICT = (
    "day, COALESCE(team_id, 0), COALESCE(user_id, 0), COALESCE(api_key_id, 0), provider_id, model, kind"
)
ZERO = Decimal("0")
# SQLite sums money as floats (15 significant digits): smaller gaps are rounding, not a difference.
TOLERANCE = Decimal("0.000001")


def _upsert(table: str, select: str) -> str:
    """INSERT the (KEY..., TOTALS...) `select` yields, adding to the rows already there."""
    added = ", ".join(f"{column} = {table}.{column} + excluded.{column}" for column in TOTALS)
    return (
        f"INSERT INTO {table} ({', '.join(KEY + TOTALS)}) {select} "
        f"ON CONFLICT ({CONFLICT}) DO UPDATE SET {added}"
    )


# add()'s statement, composed once: the same for every settlement.
_ADD = _upsert(DailySpend._meta.db_table, f"VALUES ({', '.join(['%s'] * len(KEY + TOTALS))})")


def add(record: UsageRecord) -> None:
    """Add one usage row to its day's roll-up (inside the transaction that wrote the row)."""
    db = statements.db()
    statements.run(_ADD, values(record, db), wrapper=db)


# The columns of a usage row its roll-up takes as they are (add() sends them as parameters).
FROM_USAGE = (
    "team_id",
    "user_id",
    "api_key_id",
    "provider_id",
    "model",
    "kind",
    "input_tokens",
    "output_tokens",
)


def upsert_from(source: str) -> str:
    """PostgreSQL: add()'s upsert for each usage row `source` returns (a WITH query: INSERT ...
    RETURNING FROM_USAGE and cost_usd), its day the one parameter (the configured time zone's,
    as values() computes it). The values come from the row written, not sent again: fewer
    parameters (psycopg keeps the conversion of a query of at most 50)."""
    day = statements.cast(DailySpend._meta.get_field("day"))
    # In KEY + TOTALS's order: day, the rest of the key, runs, the tokens, the cost.
    select = (
        f"SELECT %s::{day}, {', '.join(KEY[1:])}, 1, input_tokens, output_tokens, COALESCE(cost_usd, 0) "
        f"FROM {source}"
    )
    return _upsert(DailySpend._meta.db_table, select)


def day(record: UsageRecord, db: BaseDatabaseWrapper) -> Any:
    """The day of the usage row's roll-up, as add() writes it (`db`: statements.db())."""
    return db.ops.adapt_datefield_value(
        timezone.localdate(record.created_at, timezone.get_default_timezone())
    )


def values(record: UsageRecord, db: BaseDatabaseWrapper) -> list:
    """The roll-up key and totals of one usage row, as add() writes them (`db`: statements.db())."""
    return [
        day(record, db),
        record.team_id,
        record.user_id,
        record.api_key_id,
        record.provider_id,
        record.model,
        record.kind,
        1,
        record.input_tokens,
        record.output_tokens,
        record.cost_usd or ZERO,
    ]


def fold(column: str, owner_id: int) -> None:
    """Before a team, user or API key is deleted: its roll-ups are added to the same rows without
    it, as its usage rows lose it (SET_NULL), so the two still agree and no key repeats."""
    table = DailySpend._meta.db_table
    columns = ", ".join("NULL" if name == column else name for name in KEY + TOTALS)
    with connection.cursor() as cursor:
        # SQLite needs the WHERE to tell this SELECT's end from the ON CONFLICT clause.
        cursor.execute(_upsert(table, f"SELECT {columns} FROM {table} WHERE {column} = %s"), [owner_id])
        cursor.execute(f"DELETE FROM {table} WHERE {column} = %s", [owner_id])


def fold_deleted_owner(sender: type[Model], instance: Model, **kwargs) -> None:
    """pre_delete receiver for Team, User and ApiKey (connected in usage/apps.py)."""
    column = {"Team": "team_id", "User": "user_id", "ApiKey": "api_key_id"}[sender.__name__]
    fold(column, instance.pk)


@dataclass(frozen=True)
class Totals:
    runs: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = ZERO
    rows: int = 0  # roll-up rows holding this key: more than one is a duplicate

    def equals(self, other: Totals) -> bool:
        return (
            (self.runs, self.input_tokens, self.output_tokens)
            == (other.runs, other.input_tokens, other.output_tokens)
            and abs(self.cost_usd - other.cost_usd) < TOLERANCE
            and self.rows <= 1
        )


@dataclass(frozen=True)
class Difference:
    day: date
    team_id: int | None
    user_id: int | None
    api_key_id: int | None
    provider_id: str
    model: str
    kind: str
    rollup: Totals
    usage: Totals
    # What is compared with what: a team roll-up (usage/team_rollups.py) with its daily roll-ups.
    name: str = "roll-up"
    against: str = "usage rows"


def usage_sums(usage_model: type[Model] = UsageRecord, key: tuple[str, ...] = KEY):
    """What each roll-up should hold, from the usage rows: one dict per key."""
    return (
        usage_model.objects.order_by()
        .annotate(day=TruncDate("created_at"))
        .values(*key)
        .annotate(
            total_runs=Count("pk"),
            total_input=Sum("input_tokens"),
            total_output=Sum("output_tokens"),
            total_cost=Sum("cost_usd"),
        )
    )


def _totals(row: dict, rows: int = 0) -> Totals:
    return Totals(row["total_runs"], row["total_input"], row["total_output"], row["total_cost"] or ZERO, rows)


def rebuild(
    usage_model: type[Model] = UsageRecord, rollup_model: type[Model] = DailySpend, key: tuple[str, ...] = KEY
) -> tuple[int, int]:
    """Replace every roll-up with the sums of the usage rows, in one transaction; returns (roll-ups
    written, usage rows read). Migrations 0008 and 0014 call it with historical models (0008 with
    the key of its time)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Settlements wait until the new rows are in (SQLite's IMMEDIATE transaction already holds
            # the write lock); readers go on reading the old ones meanwhile.
            with connection.cursor() as cursor:
                cursor.execute(f"LOCK TABLE {rollup_model._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
        rollup_model.objects.all().delete()
        rows, read = [], 0
        for sums in usage_sums(usage_model, key).iterator():
            totals = _totals(sums)
            read += totals.runs
            rows.append(
                rollup_model(
                    **{name: sums[name] for name in key},
                    runs=totals.runs,
                    input_tokens=totals.input_tokens,
                    output_tokens=totals.output_tokens,
                    cost_usd=totals.cost_usd,
                )
            )
        rollup_model.objects.bulk_create(rows, batch_size=500)
    return len(rows), read


def differences() -> list[Difference]:
    """Every key whose roll-up does not equal the sums of its usage rows (missing, extra, wrong or
    duplicated), in key order. An empty list means the roll-ups are exact."""
    expected = {tuple(row[name] for name in KEY): _totals(row) for row in usage_sums().iterator()}
    found = {}
    rollups = (
        DailySpend.objects.order_by()
        .values(*KEY)
        .annotate(
            total_runs=Sum("runs"),
            total_input=Sum("input_tokens"),
            total_output=Sum("output_tokens"),
            total_cost=Sum("cost_usd"),
            rows=Count("pk"),
        )
    )
    for row in rollups.iterator():
        found[tuple(row[name] for name in KEY)] = _totals(row, row["rows"])
    differ = []
    for key in sorted(expected.keys() | found.keys(), key=_sortable):
        usage, rollup = expected.get(key, Totals()), found.get(key, Totals())
        if not rollup.equals(usage):
            differ.append(Difference(*key, rollup=rollup, usage=usage))
    return differ


def _sortable(key: tuple) -> tuple:
    return tuple((value is None, value if value is not None else 0) for value in key)
