"""A per-process snapshot of the configuration the run engine reads on every request: models (with
their provider and prices), budgets' definitions, fallback policies, and API keys with their team.

Every change to those rows (a save or delete of Provider, ProviderModel, Price, CustomKind, Budget,
FallbackPolicy, ApiKey or Team, in any process) sets a new configuration version in the same transaction
(providers.models.ConfigurationVersion, one row). A lookup first learns the version, a single-row
primary-key read in plain SQL: while it is unchanged, the answer comes from memory; once it changed,
answers are read again and filed under the new version. So a process sees a change at its next
lookup, never later. Money (spend, reservations, the breaker's state) is never kept here: it is read
where it is used, in its transactions. A provider's run configuration is (providers/registry.py:
its credentials decrypted once a version, as Secrets): a key saved, a provider disabled, moved or
deleted is a save of its row, so a new version, and the next request decrypts and checks it again.

A request can be pinned (`pinned()`, around each /v1/ endpoint): the version is read once, at its
first lookup, and every later lookup of that request, in any thread (asgiref's sync_to_async runs
its function in a copy of the caller's context, so the ContextVar and the one `_Pin` object it holds
reach every phase), uses it. The browser and the CLI are not pinned: they read it per lookup.

Why an answer is never older than the version it is filed under, with requests pinned to different
versions running at once: an answer is read from the database after its request learned the version
it is filed under (the pin's or the lookup's own read came first), and a read sees every change
committed before it, so it holds that version's configuration or a newer one. Each version has its
own snapshot (the last few are kept), so a request pinned to an old version never files its answers
where a request that read the new version looks, nor finds theirs: versions are random, not ordered,
so "which is newer" is never guessed. A request that read a new version only ever gets answers read
after that version was committed; a request still pinned to an old one keeps the configuration it
started with (or newer), as if it had run a moment earlier.

A pinned request's version read also tells whether any provider's circuit was open then (one
statement, not two: issue 16). While none was, its plan reads no circuit breaker
(providers/breaker.py): it plans as of that moment, a millisecond earlier, as a request that read
the breakers then would have. That answer belongs to the request and is never kept past it: the
breaker's state is not configuration.
"""

from __future__ import annotations

import functools
import secrets
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model

from llmhub import statements
from providers.models import CircuitBreaker, ConfigurationVersion

T = TypeVar("T")
TABLE = ConfigurationVersion._meta.db_table
_VERSION = f"SELECT version FROM {TABLE} WHERE id = 1"
_PINNED_VERSION = (
    f"SELECT version, EXISTS (SELECT 1 FROM {CircuitBreaker._meta.db_table} WHERE open_until IS NOT NULL) "
    f"FROM {TABLE} WHERE id = 1"
)
# The rows whose saves and deletes change the version (connected in providers/apps.py).
WATCHED = (
    "providers.Provider",
    "providers.ProviderModel",
    "providers.Price",
    "providers.CustomKind",
    "usage.Budget",
    "usage.FallbackPolicy",
    # A key revoked (or its limits or allowed models changed) is refused by every process at its
    # next request: gateway/keys.py keeps the keys it found here.
    "gateway.ApiKey",
    "accounts.Team",
)
KEPT = 4  # snapshots of this many versions at once (requests still pinned to an older one)


class _Pin:
    """The version one request reads under, once it has read it."""

    def __init__(self) -> None:
        self.read = False
        self.version: int | None = None
        self.answers: dict[tuple, object] | None = None  # its version's snapshot, once looked up
        self.circuits_open = True  # whether a circuit was open when it read the version (or unknown)


_pin: ContextVar[_Pin | None] = ContextVar("configuration_pin", default=None)
_snapshots: OrderedDict[int, dict[tuple, object]] = OrderedDict()
_lock = threading.Lock()
_MISSING = object()


def version() -> int | None:
    """The configuration's version now; None when its row is missing (a flushed test database):
    then nothing is kept in memory."""
    row = statements.run(_VERSION, (), statements.fetchone)
    return row[0] if row else None


def _version() -> int | None:
    """The pinned request's version (read at its first lookup), else the version now."""
    pin = _pin.get()
    if pin is None:
        return version()
    if not pin.read:
        row = statements.run(_PINNED_VERSION, (), statements.fetchone)
        if row is not None:
            pin.version, pin.circuits_open = row[0], bool(row[1])
        pin.read = True
    return pin.version


def circuits_closed() -> bool:
    """Whether the pinned request found no provider's circuit open when it read the version: then
    its plan skips no provider, and need not read the breakers again."""
    pin = _pin.get()
    return pin is not None and pin.read and not pin.circuits_open


def _answers(now: int) -> dict[tuple, object]:
    answers = _snapshots.get(now)  # one step under the GIL: only a new version needs the lock
    if answers is not None:
        return answers
    with _lock:
        answers = _snapshots.get(now)
        if answers is None:
            answers = _snapshots[now] = {}
            while len(_snapshots) > KEPT:
                _snapshots.popitem(last=False)
        return answers


def cached(
    key: tuple,
    read: Callable[[], T],
    fresh: Callable[[T], bool] | None = None,
    keep: Callable[[T], bool] | None = None,
) -> T:
    """`read()`'s answer for `key` under the configuration version (the pinned request's, else the
    current one), from memory while that version is kept. Answers are shared by every thread of the
    process: callers only read them. `fresh` says whether a kept answer still holds when it depends
    on the time too (a price dated in the future comes into force without a change): else it is
    read again. `keep` says whether an answer read is kept at all (a key nobody has: made-up keys
    by the thousand must not fill memory)."""
    pin = _pin.get()
    answers = pin.answers if pin is not None else None
    if answers is None:  # a pinned request keeps its version's snapshot from its first lookup on
        now = _version()
        if now is None:
            return read()
        answers = _answers(now)
        if pin is not None:
            pin.answers = answers
    answer = answers.get(key, _MISSING)
    if answer is _MISSING or (fresh is not None and not fresh(answer)):
        answer = read()  # read after the version was: never older than it
        if keep is None or keep(answer):
            answers[key] = answer
    return answer  # type: ignore[return-value]


def pinned(view: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """An async view whose lookups all use one configuration version, read at the first of them.
    The pin ends with the view: a streamed body's later lookups read the version per lookup."""

    @functools.wraps(view)
    async def pinned_view(*args: Any, **kwargs: Any) -> Any:
        token = _pin.set(_Pin())
        try:
            return await view(*args, **kwargs)
        finally:
            _pin.reset(token)

    return pinned_view


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
