"""A run's deadlines, and the one way another task stops it.

Every wait of a run (the provider's next event, a retry countdown, an ask-mode answer) goes through
its RunClock: a total time limit, an idle limit that only new text resets (keep-alive comments,
empty chunks and a trickle of bytes that never completes an event do not), and `interrupt()`, with
which a cancel from any socket or the server's drain ends the wait at once. Nothing is cancelled
from outside: the run sees the reason where it waits and ends itself, settled.

One timer a run, not one a wait: a stream's events are waits of their own, and an asyncio.timeout
for each (a timer made, pushed on the loop's heap and cancelled, a context entered and left) was a
good part of the CPU the hub spends on an event. The timer is set for the earliest end a wait may
have; new text only moves the idle limit on, and a timer that comes due before the current wait's
end sets itself again for that end. A wait that reaches its end is cancelled, as asyncio.timeout
cancels it, and ends as a Stalled or a Stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from providers.errors import Stalled
from usage.events import Stop, TimeLimit

T = TypeVar("T")


class RunClock:
    def __init__(self, limit: float, idle: float) -> None:
        self._loop = asyncio.get_running_loop()
        self.limit, self.idle = limit, idle
        self.ends_at = self._loop.time() + limit
        self.idle_at = self._loop.time() + idle
        self.stop: Stop | None = None
        self._waiter: asyncio.Task | None = None  # the task in a wait, while it waits
        self._until = 0.0  # when the current wait times out
        self._cancelled = False  # the current wait was cancelled by this clock
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the run runs on: only it may interrupt the run's wait."""
        return self._loop

    def progress(self) -> None:
        """New text arrived (or a new attempt begins): the idle limit starts again."""
        self.idle_at = self._loop.time() + self.idle

    def interrupt(self, stop: Stop) -> None:
        """End the run's current wait (or its next one) with `stop`; the first reason given wins."""
        self.stop = self.stop or stop
        self._cancel_wait()

    def close(self) -> None:
        """The run is over: its timer is taken off the loop (it would hold the clock until due)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def check(self) -> None:
        if self.stop is not None:
            raise self.stop
        if self._loop.time() >= self.ends_at:
            raise TimeLimit(self.limit)

    def next(self, events: AsyncIterator[T], provider: str) -> Awaitable[T | None]:
        """The next event of a provider's stream (None at its end), within both limits."""
        self.check()  # before anext(): a coroutine made and never awaited would warn
        # _within's coroutine itself, not one more that awaits it: this is asked once an event.
        until = self.ends_at if self.ends_at < self.idle_at else self.idle_at  # min(), without its call
        return self._within(anext(events, None), until, provider)

    async def sleep(self, seconds: float) -> None:
        self.check()
        await self._within(asyncio.sleep(seconds), self.ends_at)

    async def wait(self, awaitable: Callable[[], Awaitable[T]]) -> T:
        self.check()
        return await self._within(awaitable(), self.ends_at)

    async def _within(self, waited: Awaitable[T], until: float, provider: str = "") -> T:
        task = asyncio.current_task(self._loop)
        assert task is not None, "a run waits in a task"
        cancelling = task.cancelling()
        self._waiter, self._until, self._cancelled = task, until, False
        if self._timer is None or self._timer_at > until:
            self._set_timer(until)
        try:
            return await waited
        except asyncio.CancelledError:
            if self._cancelled:  # the wait reached its end, or the run was interrupted
                self._cancelled = False
                if task.uncancel() <= cancelling:  # and no one else cancelled the task
                    self.check()
                    raise Stalled(provider, self.idle) from None
            raise
        finally:
            if self._cancelled:  # cancelled as it ended anyway: taken back, as asyncio.timeout does
                task.uncancel()
            self._waiter, self._cancelled = None, False

    def _set_timer(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self._loop.call_at(when, self._on_timer), when

    def _on_timer(self) -> None:
        self._timer = None
        if self._waiter is None:
            return  # between waits: the next one sets the timer again
        if self._until <= self._timer_at:
            self._cancel_wait()
        else:  # new text moved the idle limit on since the timer was set
            self._set_timer(self._until)

    def _cancel_wait(self) -> None:
        if self._waiter is not None and not self._cancelled:
            self._cancelled = True
            self._waiter.cancel()
