"""llmhub.hops: a function sent to the pooled threads sees the caller's context, uses the database
there (never on the loop's thread), and leaves no connection open past its age."""

from __future__ import annotations

import threading
from contextvars import ContextVar

import pytest
from django.core.exceptions import SynchronousOnlyOperation
from django.db import DEFAULT_DB_ALIAS, connection, connections

from llmhub.hops import hop
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


async def test_a_connection_past_its_age_is_closed_when_the_hop_ends(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    used = await hop(_connection)
    assert used.alias == DEFAULT_DB_ALIAS and used is not connections[DEFAULT_DB_ALIAS]
    assert used.connection is None
