"""What an API request does once its answer is sent: its log lines and metrics (ops/middleware.py,
ops/observe.py). A client waits for the answer's last byte, not for the lines that describe it, so
these are written after it (~100 µs of CPU a request less before it, issue 16), while the client
reads the answer and sends its next request. What a request must do before its answer ends (the
usage row, the roll-ups, the run's end) is not put here.

llmhub/api_handler.py collects them for each request (`collecting()`) and runs them once the
answer's last byte is handed to the server, each on its own: one that fails is logged, and the
others still run. Outside an API request (a run page's socket, the command line, a test calling a
view) there is no collection: `later()` makes the call at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

logger = logging.getLogger(__name__)


class Afterwards:
    """The calls collected for one request. A call added from a database thread (the request's
    settlement) and the request's end may meet: the lock makes a call either run with the others
    or be refused (later() then makes it at once), never lost between the two."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[tuple[Callable, tuple]] | None = []

    def add(self, function: Callable, args: tuple) -> bool:
        with self._lock:
            if self._calls is None:
                return False  # the request's calls have been run already
            self._calls.append((function, args))
            return True

    def run(self) -> None:
        with self._lock:
            calls, self._calls = self._calls or [], None
        for function, args in calls:
            try:
                function(*args)
            except Exception:  # noqa: BLE001 - the answer is sent: the others still run, this is logged
                logger.exception(
                    "After the answer was sent, %s failed", getattr(function, "__qualname__", function)
                )


_current: ContextVar[Afterwards | None] = ContextVar("afterwards", default=None)


def later(function: Callable[..., Any], *args: Any) -> None:
    """`function(*args)` once the current request's answer is sent; at once when no request is
    collecting such calls (or its calls have run already)."""
    collected = _current.get()
    if collected is None or not collected.add(function, args):
        function(*args)


def collecting() -> _Collecting:
    """Calls made with later() in this context (and the database threads it sends work to, which
    run in a copy of it) are collected, to be run by the caller with `.run()`."""
    return _Collecting()


class _Collecting:
    """A class, not a @contextmanager generator: ~7,000 instructions less a request (callgrind), a
    StopIteration made and caught at its end among them."""

    def __enter__(self) -> Afterwards:
        collected = Afterwards()
        self._token = _current.set(collected)
        return collected

    def __exit__(self, *raised: Any) -> None:
        _current.reset(self._token)
