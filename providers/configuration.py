"""A per-process snapshot of the configuration the run engine reads on every request: models (with
their provider and prices), budgets' definitions and fallback policies.

Every change to those rows (a save or delete of Provider, ProviderModel, Price, CustomKind, Budget or
FallbackPolicy, in any process) sets a new configuration version in the same transaction
(providers.models.ConfigurationVersion, one row). Each lookup here first reads that one number, a
single-row primary-key read in plain SQL: while it is unchanged, the answer comes from memory; once
it changed, the snapshot is dropped and filled again as lookups come. So a process sees a change at
its next lookup, never later. API keys and money (spend, reservations, the breaker's state) are never
kept here: they are read where they are used, in their transactions.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TypeVar

from django.db import connection
from django.db.models import Model

from providers.models import ConfigurationVersion

T = TypeVar("T")
TABLE = ConfigurationVersion._meta.db_table
# The rows whose saves and deletes change the version (connected in providers/apps.py).
WATCHED = (
    "providers.Provider",
    "providers.ProviderModel",
    "providers.Price",
    "providers.CustomKind",
    "usage.Budget",
    "usage.FallbackPolicy",
)


class _Snapshot:
    def __init__(self, version: int | None) -> None:
        self.version = version
        self.answers: dict[tuple, object] = {}


_current = _Snapshot(None)


def version() -> int | None:
    """The configuration's version now; None when its row is missing (a flushed test database):
    then nothing is kept in memory."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT version FROM {TABLE} WHERE id = 1")
        row = cursor.fetchone()
    return row[0] if row else None


def cached(key: tuple, read: Callable[[], T]) -> T:
    """`read()`'s answer for `key` under the current configuration version, from memory while the
    version is unchanged. Answers are shared by every thread of the process: callers only read them."""
    global _current
    now = version()
    if now is None:
        return read()
    snapshot = _current
    if snapshot.version != now:
        snapshot = _current = _Snapshot(now)
    if key not in snapshot.answers:
        snapshot.answers[key] = read()  # read after the version: never older than it
    return snapshot.answers[key]  # type: ignore[return-value]


def changed(sender: type[Model] | None = None, **kwargs) -> None:
    """A new configuration version, in the transaction of the change (a rolled-back change leaves
    the version as it was). Random rather than counted: a number seen in a transaction that was
    then rolled back is never reused for other rows. post_save / post_delete receiver."""
    new = secrets.randbits(62)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET version = %s WHERE id = 1", [new])
        if cursor.rowcount == 0:
            ConfigurationVersion.objects.bulk_create(
                [ConfigurationVersion(pk=1, version=new)], ignore_conflicts=True
            )
