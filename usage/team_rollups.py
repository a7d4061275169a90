"""Team roll-ups (TeamDailySpend): DailySpend summed without user and API key, kept by database
triggers on DailySpend, so that the spend page and the team and provider budgets read one row per
day, team, provider, model and kind of call instead of one per user and API key as well.

Each insert, update and delete of a DailySpend row changes its team row in the same statement, on
SQLite (four triggers) and PostgreSQL (one trigger function): exact whoever writes DailySpend, and
no statement more for a settlement. A team row whose DailySpend rows are all gone (a fold on
deletion, a rebuild) is deleted with the last of them: no row of zeros lingers in a chart or holds
on to a deleted team.

SQLite drops a table's triggers when a migration rebuilds the table (most AlterField and AddField
on DailySpend do): such a migration must call install() again. `manage.py rebuild_rollups --check`
reports team rows that differ from the DailySpend rows they sum; `rebuild_rollups` refills them.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection
from django.db.models import Count, Sum

from usage.models import DailySpend, TeamDailySpend
from usage.rollups import Difference, Totals

TEAM, DAILY = "usage_teamdailyspend", "usage_dailyspend"
KEY = ("day", "team_id", "provider_id", "model", "kind")
TOTALS = ("runs", "input_tokens", "output_tokens", "cost_usd")
COLUMNS = ", ".join(KEY + TOTALS)
# TeamDailySpend's unique index (usage/models.py), as an ON CONFLICT target must spell it.
CONFLICT = "day, COALESCE(team_id, 0), provider_id, model, kind"


def rollups_of(api_key: int | None) -> type[DailySpend] | type[TeamDailySpend]:
    """The roll-ups the spend page and the budgets read: one API key's spend is only in DailySpend;
    anything else reads the team roll-ups, without a row per user and key (20 times fewer rows in
    bench/spend.py)."""
    return DailySpend if api_key else TeamDailySpend


def _key(row: str, table: str = "") -> str:
    """The WHERE of `row`'s (NEW or OLD) team row, on `table`'s columns ("d." for an alias)."""
    return (
        f"{table}day = {row}.day AND COALESCE({table}team_id, 0) = COALESCE({row}.team_id, 0) "
        f"AND {table}provider_id = {row}.provider_id AND {table}model = {row}.model "
        f"AND {table}kind = {row}.kind"
    )


ADD_NEW = (
    f"INSERT INTO {TEAM} ({COLUMNS}) VALUES ({', '.join(f'NEW.{column}' for column in KEY + TOTALS)}) "
    f"ON CONFLICT ({CONFLICT}) DO UPDATE SET "
    + ", ".join(f"{column} = {TEAM}.{column} + excluded.{column}" for column in TOTALS)
)
# A settlement's upsert updating its DailySpend row: the difference, added in place.
CHANGE = (
    f"UPDATE {TEAM} SET "
    + ", ".join(f"{column} = {column} + NEW.{column} - OLD.{column}" for column in TOTALS)
    + f" WHERE {_key('NEW')}"
)
# Amounts leave by UPDATE, not by an upsert of negative amounts: the CHECK (>= 0) of the positive
# integer columns refuses a negative row before its conflict is seen (SQLite and PostgreSQL).
TAKE_OLD = (
    f"UPDATE {TEAM} SET "
    + ", ".join(f"{column} = {column} - OLD.{column}" for column in TOTALS)
    + f" WHERE {_key('OLD')}"
)
DROP_EMPTY = (
    f"DELETE FROM {TEAM} WHERE {_key('OLD')} "
    f"AND NOT EXISTS (SELECT 1 FROM {DAILY} d WHERE {_key('OLD', 'd.')})"
)
SAME_KEY = (
    "NEW.day = OLD.day AND COALESCE(NEW.team_id, 0) = COALESCE(OLD.team_id, 0) "
    "AND NEW.provider_id = OLD.provider_id AND NEW.model = OLD.model AND NEW.kind = OLD.kind"
)

SQLITE = [
    f"CREATE TRIGGER usage_teamdailyspend_on_insert AFTER INSERT ON {DAILY} BEGIN {ADD_NEW}; END",
    f"CREATE TRIGGER usage_teamdailyspend_on_update AFTER UPDATE ON {DAILY} WHEN {SAME_KEY} "
    f"BEGIN {CHANGE}; END",
    # A row moved to another key (its team set to NULL, its day or model changed by hand).
    f"CREATE TRIGGER usage_teamdailyspend_on_move AFTER UPDATE ON {DAILY} WHEN NOT ({SAME_KEY}) "
    f"BEGIN {TAKE_OLD}; {ADD_NEW}; {DROP_EMPTY}; END",
    f"CREATE TRIGGER usage_teamdailyspend_on_delete AFTER DELETE ON {DAILY} "
    f"BEGIN {TAKE_OLD}; {DROP_EMPTY}; END",
]
SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS usage_teamdailyspend_on_{event}"
    for event in ("insert", "update", "move", "delete")
]
POSTGRESQL = [
    f"""CREATE FUNCTION usage_teamdailyspend_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND {SAME_KEY} THEN
        {CHANGE};
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        {TAKE_OLD};
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {ADD_NEW};
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        {DROP_EMPTY};
    END IF;
    RETURN NULL;
END
$$""",
    f"CREATE TRIGGER usage_teamdailyspend_follow AFTER INSERT OR UPDATE OR DELETE ON {DAILY} "
    "FOR EACH ROW EXECUTE FUNCTION usage_teamdailyspend_follow()",
]
POSTGRESQL_DROP = [
    f"DROP TRIGGER IF EXISTS usage_teamdailyspend_follow ON {DAILY}",
    "DROP FUNCTION IF EXISTS usage_teamdailyspend_follow()",
]


def install(apps, schema_editor) -> None:
    """Migration 0015: create the triggers, then fill the team rows from DailySpend. In this
    order: on PostgreSQL, CREATE TRIGGER waits for the settlements writing DailySpend and holds
    off new ones until the migration commits, so the fill misses none."""
    postgresql = schema_editor.connection.vendor == "postgresql"
    for sql in POSTGRESQL if postgresql else SQLITE:
        schema_editor.execute(sql)
    refill(schema_editor.execute)


def uninstall(apps, schema_editor) -> None:
    postgresql = schema_editor.connection.vendor == "postgresql"
    for sql in POSTGRESQL_DROP if postgresql else SQLITE_DROP:
        schema_editor.execute(sql)


def refill(execute: Callable[[str], object] | None = None) -> None:
    """Replace every team row with the sums of DailySpend (`manage.py rebuild_rollups` calls it in
    its transaction, after rebuilding DailySpend: right even if the triggers had been lost)."""
    execute = execute or _execute
    execute(f"DELETE FROM {TEAM}")
    execute(
        f"INSERT INTO {TEAM} ({COLUMNS}) SELECT {', '.join(KEY)}, "
        + ", ".join(f"SUM({column})" for column in TOTALS)
        + f" FROM {DAILY} GROUP BY {', '.join(KEY)}"
    )


def differences() -> list[Difference]:
    """Every team row that does not equal the sums of its DailySpend rows (missing, extra, wrong
    or duplicated), in key order: none unless the triggers were lost or bypassed."""
    sums = {"runs": Sum("runs"), "input": Sum("input_tokens"), "output": Sum("output_tokens")}
    expected, found = {}, {}
    for row in DailySpend.objects.order_by().values(*KEY).annotate(**sums, cost=Sum("cost_usd")):
        expected[tuple(row[name] for name in KEY)] = _totals(row)
    for row in (
        TeamDailySpend.objects.order_by()
        .values(*KEY)
        .annotate(**sums, cost=Sum("cost_usd"), rows=Count("pk"))
    ):
        found[tuple(row[name] for name in KEY)] = _totals(row, row["rows"])
    differ = []
    for key in sorted(expected.keys() | found.keys(), key=lambda key: [(v is None, v or 0) for v in key]):
        daily, team = expected.get(key, Totals()), found.get(key, Totals())
        if not team.equals(daily):
            where = dict(zip(KEY, key, strict=True))
            differ.append(
                Difference(
                    **where,
                    user_id=None,
                    api_key_id=None,
                    rollup=team,
                    usage=daily,
                    name="team roll-up",
                    against="daily roll-ups",
                )
            )
    return differ


def _totals(row: dict, rows: int = 0) -> Totals:
    return Totals(row["runs"], row["input"], row["output"], row["cost"] or Totals.cost_usd, rows)


def _execute(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)
