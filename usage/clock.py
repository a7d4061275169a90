"""A run's deadlines, and the one way another task stops it.

Every wait of a run (the provider's next event, a retry countdown, an ask-mode answer) goes through
its RunClock: a total time limit, an idle limit that only new text resets (keep-alive comments,
empty chunks and a trickle of bytes that never completes an event do not), and `interrupt()`, with
which a cancel from any socket or the server's drain ends the wait at once. Nothing is cancelled
from outside: the run sees the reason where it waits and ends itself, settled.
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
        self._timeout: asyncio.Timeout | None = None

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
        if self._timeout is not None and not self._timeout.expired():
            self._timeout.reschedule(self._loop.time())

    def check(self) -> None:
        if self.stop is not None:
            raise self.stop
        if self._loop.time() >= self.ends_at:
            raise TimeLimit(self.limit)

    async def next(self, events: AsyncIterator[T], provider: str) -> T | None:
        """The next event of a provider's stream (None at its end), within both limits."""
        return await self._within(lambda: anext(events, None), self.idle_at, provider)

    async def sleep(self, seconds: float) -> None:
        await self._within(lambda: asyncio.sleep(seconds))

    async def wait(self, awaitable: Callable[[], Awaitable[T]]) -> T:
        return await self._within(awaitable)

    async def _within(
        self, start: Callable[[], Awaitable[T]], idle_at: float | None = None, provider: str = ""
    ) -> T:
        self.check()  # before the awaitable exists: a coroutine made and never awaited would warn
        when = self.ends_at if idle_at is None else min(self.ends_at, idle_at)
        try:
            async with asyncio.timeout_at(when) as self._timeout:
                return await start()
        except TimeoutError:
            self.check()
            raise Stalled(provider, self.idle) from None
        finally:
            self._timeout = None
