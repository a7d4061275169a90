"""What a request leaves for after its answer (llmhub/afterwards.py): each call made once, in order;
one that fails is logged with its traceback, never dropped silently, and the others still run."""

from __future__ import annotations

import contextvars
import logging

from llmhub import afterwards


def test_the_calls_run_when_asked_in_order_and_a_failure_is_logged_without_stopping_the_others(caplog):
    done: list[str] = []
    with afterwards.collecting() as collected:
        assert afterwards.later(done.append, "first")
        assert afterwards.later(int, "not a number")
        assert afterwards.later(done.append, "last")
    assert done == []  # nothing yet: the answer is being sent
    with caplog.at_level(logging.ERROR, logger="llmhub.afterwards"):
        collected.run()
    assert done == ["first", "last"]
    [failure] = caplog.records
    assert failure.exc_info[0] is ValueError and "int failed" in failure.getMessage()
    collected.run()
    assert done == ["first", "last"]  # each once


def test_outside_a_request_or_once_its_calls_ran_the_caller_makes_the_call_itself():
    """A run page's socket collects nothing; and a database thread still working for a request whose
    calls already ran (a client that hung up) is told so, rather than its call being lost."""
    assert afterwards.later(print) is False
    with afterwards.collecting() as collected:
        hopped = contextvars.copy_context()  # what a database thread runs in (llmhub/hops.py)
        assert hopped.run(afterwards.later, print) is True
        collected.run()
        assert hopped.run(afterwards.later, print) is False
        assert afterwards.later(print) is False
