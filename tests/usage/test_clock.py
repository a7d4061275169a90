"""A run's clock on a real loop: one timer a run, set again as text moves the idle limit on."""

from __future__ import annotations

import asyncio

import pytest

from providers.errors import Stalled
from usage.clock import RunClock
from usage.events import Cancelled, TimeLimit


async def paced(pauses: list[float]):
    for number, pause in enumerate(pauses):
        await asyncio.sleep(pause)
        yield number


async def read(clock: RunClock, pauses: list[float]) -> list[int]:
    seen, events = [], paced(pauses)
    while (event := await clock.next(events, "Fake")) is not None:
        clock.progress()
        seen.append(event)
    return seen


async def test_text_that_keeps_coming_outlasts_the_idle_limit_many_times():
    clock = RunClock(limit=5, idle=0.5)
    assert await read(clock, [0.2] * 6) == list(range(6))  # 1.2 s, each wait well within 0.5 s
    clock.close()


async def test_a_wait_past_the_idle_limit_is_stalled_after_text_moved_it_on():
    clock = RunClock(limit=5, idle=0.5)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Stalled):
        await read(clock, [0.2, 0.2, 0.2, 3.0])
    assert 0.6 + 0.5 - 0.02 < loop.time() - started < 0.6 + 0.5 + 0.4
    clock.close()


async def test_the_time_limit_ends_a_wait_however_steady_the_text():
    clock = RunClock(limit=0.35, idle=5)
    with pytest.raises(TimeLimit):
        await read(clock, [0.1] * 10)
    with pytest.raises(TimeLimit):
        await clock.sleep(1)  # and every wait after it
    clock.close()


async def test_an_interrupt_ends_the_current_wait_at_once_and_every_later_one():
    clock = RunClock(limit=5, idle=5)
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, clock.interrupt, Cancelled(by="alice"))
    started = loop.time()
    with pytest.raises(Cancelled):
        await clock.sleep(2)
    assert loop.time() - started < 0.5
    with pytest.raises(Cancelled):
        await clock.wait(lambda: asyncio.sleep(0))
    clock.close()


async def test_a_cancel_from_outside_stays_a_cancel():
    """The task cancelled by someone else (a client that hung up): not turned into a stall."""
    clock = RunClock(limit=5, idle=0.05)
    task = asyncio.current_task()
    asyncio.get_running_loop().call_later(0.01, task.cancel)
    with pytest.raises(asyncio.CancelledError):
        await clock.sleep(1)
    assert task.uncancel() == 0  # the clock took back only its own cancel (it made none here)
    clock.close()


async def test_a_wait_that_ends_as_it_comes_due_is_not_cancelled_later():
    clock = RunClock(limit=5, idle=5)
    for _ in range(50):
        assert await clock.wait(lambda: asyncio.sleep(0, "done")) == "done"
    assert asyncio.current_task().cancelling() == 0
    clock.close()


async def test_a_closed_clock_leaves_no_timer_on_the_loop():
    loop = asyncio.get_running_loop()
    clock = RunClock(limit=3600, idle=600)
    before = _live_timers(loop)
    await read(clock, [0, 0, 0])
    assert _live_timers(loop) == before + 1  # the run's one timer, while it runs
    clock.close()
    assert _live_timers(loop) == before


def _live_timers(loop: asyncio.AbstractEventLoop) -> int:
    return sum(not handle.cancelled() for handle in loop._scheduled)  # noqa: SLF001 - the loop's own heap
