"""What a request leaves for after its answer (llmhub/afterwards.py): each call made once, in order;
one that fails is logged with its traceback, never dropped silently, and the others still run."""

from __future__ import annotations

import contextvars
import logging

from llmhub import afterwards


def test_the_calls_run_when_asked_in_order_and_a_failure_is_logged_without_stopping_the_others(caplog):
    done: list[str] = []
    with afterwards.collecting() as collected:
        afterwards.later(done.append, "first")
        afterwards.later(int, "not a number")
        afterwards.later(done.append, "last")
    assert done == []  # nothing yet: the answer is being sent
    with caplog.at_level(logging.ERROR, logger="llmhub.afterwards"):
        collected.run()
    assert done == ["first", "last"]
    [failure] = caplog.records
    assert failure.exc_info[0] is ValueError and "int failed" in failure.getMessage()
    collected.run()
    assert done == ["first", "last"]  # each once


def test_outside_a_request_or_once_its_calls_ran_the_call_is_made_at_once():
    """A run page's socket collects nothing; and a database thread still working for a request whose
    calls already ran (a client that hung up) makes its call at once, rather than it being lost."""
    done: list[str] = []
    afterwards.later(done.append, "no request")
    assert done == ["no request"]
    with afterwards.collecting() as collected:
        hopped = contextvars.copy_context()  # what a database thread runs in (llmhub/hops.py)
        hopped.run(afterwards.later, done.append, "collected")
        assert done == ["no request"]
        collected.run()
        assert done == ["no request", "collected"]
        hopped.run(afterwards.later, done.append, "after the run")
        afterwards.later(done.append, "after the run, here")
        assert done == ["no request", "collected", "after the run", "after the run, here"]
