"""PostgreSQL: a settlement's three writes (the claim's UPDATE of the run, the usage row, its roll-up)
in one statement, one round trip instead of three (~40 µs of CPU each in psycopg). Each write takes
its row from the one before it (INSERT ... SELECT ... FROM), so they run in the order the separate
statements ran, locking the run's row first, and a claim that finds no run writes nothing. The values
are cast to their columns' types: in a SELECT, a parameter sent untyped (text, NULL) is not read as
the column it goes to. SQLite runs no statement on another process: its three stay apart."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from llmhub import statements
from providers import breaker
from usage import rollups
from usage.models import Run, UsageRecord

if TYPE_CHECKING:
    from usage.records import Claim


def claim_and_record(run: Run, settled: dict[str, Any], claim: Claim, record: UsageRecord) -> bool | None:
    """The claim's UPDATE, the usage row's INSERT and its roll-up's upsert in one statement: None
    when the claim found no run to settle (nothing was written), else whether the provider that
    answered has a circuit to close (read with the claim, as records._claim() does)."""
    wrapper = statements.db()
    sql, sets, inserts = _claiming_sql(tuple(settled), claim.where)
    params = [prepare(value, wrapper) for prepare, value in zip(sets, settled.values(), strict=True)]
    params += [run.pk, *claim.params, claim.answered_by or ""]
    params += [prepare(read(record), wrapper) for read, prepare in inserts]
    params.append(rollups.day(record, wrapper))
    found = statements.run(sql, params, statements.fetchone, wrapper)
    if found is None:
        return None
    record.pk = found[0]
    record._state.adding, record._state.db = False, wrapper.alias
    return bool(found[1])


@functools.lru_cache(maxsize=8)
def _claiming_sql(names: tuple[str, ...], where: str) -> tuple[str, list, list]:
    update, sets = statements.update_sql(Run, names, where)
    insert, inserts = statements.insert_select(UsageRecord, "claimed", (*rollups.FROM_USAGE, "cost_usd"))
    upsert = rollups.upsert_from("recorded")
    sql = (
        f"WITH claimed AS ({update} RETURNING {breaker.failing()} AS failing), recorded AS ({insert}), "
        f"rolled AS ({upsert}) SELECT id, (SELECT failing FROM claimed) FROM recorded"
    )
    return sql, sets, inserts
