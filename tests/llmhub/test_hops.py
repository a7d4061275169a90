"""llmhub.hops: a function sent to the pooled threads sees the caller's context, uses the database
there (never on the loop's thread), and leaves no connection open past its age."""

from __future__ import annotations

import asyncio
import threading
from contextvars import ContextVar

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction

from llmhub import hops, statements
from llmhub.hops import hop, start
from usage.models import Run

pytestmark = pytest.mark.django_db(transaction=True)
asked: ContextVar[str] = ContextVar("asked", default="")


def _seen() -> tuple[str, str, int]:
    answer = asked.get()
    asked.set("changed there")  # stays in the function's copy of the context
    return answer, threading.current_thread().name, Run.objects.count()


async def test_a_hop_runs_on_a_pooled_thread_with_the_callers_context():
    asked.set("by the request")
    answer, thread, runs = await hop(_seen)
    assert answer == "by the request" and asked.get() == "by the request"
    assert thread != threading.current_thread().name and runs == 0
    with pytest.raises(SynchronousOnlyOperation):  # on the loop's thread the ORM still refuses
        Run.objects.count()


def _connection() -> object:
    """The pooled thread's own connection (not the proxy, which the caller would read as its own),
    once it has been used."""
    Run.objects.count()
    return connections[DEFAULT_DB_ALIAS]


def _statements_connection() -> object:
    """The same, used through llmhub/statements.py (the hop keeps it: the one it closes)."""
    statements.run("SELECT 1")
    return statements.db()


@pytest.mark.parametrize("used_by", [_connection, _statements_connection])
async def test_a_connection_past_its_age_is_closed_when_the_hop_ends(monkeypatch, used_by):
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    used = await hop(used_by)
    assert used.alias == DEFAULT_DB_ALIAS and used is not connections[DEFAULT_DB_ALIAS]
    assert used.connection is None


def _fails() -> None:
    raise ValueError("in the pooled thread")


async def test_a_hops_exception_reaches_its_caller():
    with pytest.raises(ValueError, match="in the pooled thread"):
        await hop(_fails)


async def test_hops_under_way_together_run_on_threads_of_their_own():
    both_in = threading.Barrier(2, timeout=10)  # each waits for the other: one thread would not do

    def meet() -> str:
        both_in.wait()
        return threading.current_thread().name

    first, second = await asyncio.gather(hop(meet), hop(meet))
    assert first != second


async def test_a_cancelled_callers_function_runs_to_its_end():
    let_go, done = threading.Event(), threading.Event()

    def slow() -> None:
        assert let_go.wait(10)
        done.set()

    trip = start(slow)
    waiting = asyncio.ensure_future(trip)
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    let_go.set()
    assert await asyncio.to_thread(done.wait, 10)
    assert await hop(threading.current_thread)  # the pool goes on serving


def test_a_loops_threads_end_once_it_is_closed():
    loop = asyncio.new_event_loop()
    thread = loop.run_until_complete(hop(threading.current_thread))
    assert thread.name.startswith("llmhub-hop-") and thread.is_alive()
    loop.close()
    thread.join(10)
    assert not thread.is_alive()


async def test_hops_one_after_another_reuse_one_thread():
    """A thread that has handed back its result is free for the next hop, which may follow at once:
    no second thread is started for hops that never overlap (one used to be, now and then, when the
    caller heard of the result before the thread counted itself idle)."""
    names = {(await hop(threading.current_thread)).name for _ in range(300)}
    assert len(names) == 1, names


def _connections_seen() -> tuple[object, object, bool]:
    """The thread's connection as statements.db() and as Django see it, and whether a statement's
    connection is in the transaction Django's atomic() began."""
    with transaction.atomic():
        statements.run("SELECT 1")
        in_transaction = statements.db().in_atomic_block
    return statements.db(), connections[DEFAULT_DB_ALIAS], in_transaction


def _replace_the_connection() -> object:
    old = connections[DEFAULT_DB_ALIAS]
    connections[DEFAULT_DB_ALIAS] = connections.create_connection(DEFAULT_DB_ALIAS)
    old.close()
    return connections[DEFAULT_DB_ALIAS]


async def test_a_hops_statements_use_the_threads_connection_looked_up_once_a_hop():
    # Looked up once a hop (a look-up is ~10,000 instructions): it must be Django's own, the one
    # atomic() holds the transaction on, and no hop may keep the one an earlier hop looked up.
    mine, djangos, in_transaction = await hop(_connections_seen)
    assert mine is djangos and in_transaction
    new = await hop(_replace_the_connection)  # the one pooled thread (hops one after another)
    assert new is not djangos
    mine, djangos, in_transaction = await hop(_connections_seen)
    assert mine is djangos is new and in_transaction
    assert hops.current.wrapper is None  # and on this thread none was ever kept


def _transaction_written() -> int:
    with transaction.atomic():
        Run.objects.all().delete()  # a statement in the transaction; the table is empty
    return Run.objects.count()


async def test_a_transaction_on_the_loops_thread_is_refused_as_django_refuses_it(monkeypatch):
    """The backends check for a running loop without an exception (llmhub/loop_checks.py): still
    refused on the loop's thread with the connection open, still allowed in a hop."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    connection.ensure_connection()
    assert connection.get_autocommit()
    monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE")
    for refused in (
        connection.ensure_connection,
        connection.get_autocommit,
        connection.commit,
        lambda: connection.set_autocommit(False),
        transaction.atomic().__enter__,
    ):
        with pytest.raises(SynchronousOnlyOperation):
            refused()
    assert await hop(_transaction_written) == 0
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    connection.close()


@pytest.mark.parametrize("module", ["sqlite3", "postgresql"])
def test_djangos_backends_define_commit_and_ensure_connection_only_in_the_base_class(module):
    """llmhub/loop_checks.py calls BaseDatabaseWrapper.commit's undecorated function and skips
    ensure_connection() with a connection open: a backend of Django's that defined either itself
    would be passed over unnoticed. Fails on the Django upgrade that does."""
    from importlib import import_module

    from django.db.backends.base.base import BaseDatabaseWrapper

    backend = import_module(f"django.db.backends.{module}.base").DatabaseWrapper
    for name in ("commit", "ensure_connection"):
        defined = [cls for cls in backend.__mro__ if name in vars(cls)]
        assert defined == [BaseDatabaseWrapper], (name, defined)
