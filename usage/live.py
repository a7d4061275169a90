"""The runs this process is running: cancel addressed to a run, and the drain at shutdown.

A cancel goes to one channel-layer group, `runs.cancel`, naming its run: every process behind the
same REDIS_URL (in one process, the in-memory layer does the same) has one listener in the group,
and the process running that run interrupts it; the others ignore it. A run costs the channel layer
nothing: no channel, group membership or wait of its own, so no Redis round trip a request and no
wait at its end for a listener to stop. On SIGTERM the server drains: no run starts any more,
running ones get a grace period to finish, then each is interrupted where it waits and ends settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from channels.layers import get_channel_layer

from usage.clock import RunClock
from usage.events import Cancelled, Interrupted
from usage.models import Run

logger = logging.getLogger(__name__)
GROUP = "runs.cancel"
# A group membership lapses after the channel layer's group_expiry (a day): the listener joins again
# this often.
JOIN_SECONDS = 3600.0
# While the channel layer fails (Redis down), the listener tries again this often.
RETRY_SECONDS = 1.0
# After the grace period, how long interrupted runs may take to write their settlement.
SETTLE_SECONDS = 10.0


class _Runs:
    def __init__(self) -> None:
        self.clocks: dict[str, RunClock] = {}
        self.draining = False
        # One listener an event loop: the server has one; tests and the command line make others.
        self.listeners: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


RUNNING = _Runs()


def draining() -> bool:
    return RUNNING.draining


def count() -> int:
    return len(RUNNING.clocks)


@contextlib.asynccontextmanager
async def running(run: Run, clock: RunClock) -> AsyncIterator[None]:
    """Register a run for the drain and for a cancel from any socket of any process while it runs."""
    key = str(run.uuid)
    RUNNING.clocks[key] = clock
    listen(clock.loop)
    try:
        yield
    finally:
        RUNNING.clocks.pop(key, None)
        clock.close()


async def cancel(run: Run, by: str) -> None:
    """Ask the run to stop, wherever it runs; a run that is not running anywhere ignores it."""
    clock = RUNNING.clocks.get(str(run.uuid))
    if clock is not None:  # it runs in this process: no need of the channel layer (or of Redis)
        clock.loop.call_soon_threadsafe(clock.interrupt, Cancelled(by=by))
        return
    message = {"type": "run.cancel", "run": str(run.uuid), "by": by}
    await get_channel_layer().group_send(GROUP, message)


def listen(loop: asyncio.AbstractEventLoop) -> None:
    """Start the loop's cancel listener, unless it runs already."""
    listener = RUNNING.listeners.get(loop)
    if listener is None or listener.done():
        RUNNING.listeners[loop] = loop.create_task(_listen(loop), name="cancel listener")


async def _listen(loop: asyncio.AbstractEventLoop) -> None:
    layer = get_channel_layer()
    channel = ""
    failing = False
    try:
        while True:
            try:
                channel = channel or await layer.new_channel()
                await layer.group_add(GROUP, channel)
                if failing:
                    logger.warning("Listening for cancels from other processes again")
                    failing = False
                await _receive(layer, channel, loop)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged once an outage; the runs go on meanwhile
                if not failing:
                    logger.exception("Cannot listen for cancels from other processes; trying again")
                    failing = True
                await asyncio.sleep(RETRY_SECONDS)
    finally:
        if RUNNING.listeners.get(loop) is asyncio.current_task():
            del RUNNING.listeners[loop]
        if channel:
            with contextlib.suppress(Exception):  # the membership lapses by itself (group_expiry)
                await layer.group_discard(GROUP, channel)


async def _receive(layer, channel: str, loop: asyncio.AbstractEventLoop) -> None:
    """Interrupt this loop's runs as their cancels arrive, for JOIN_SECONDS."""
    deadline = loop.time() + JOIN_SECONDS
    while loop.time() < deadline:
        try:
            async with asyncio.timeout_at(deadline):
                message = await layer.receive(channel)
        except TimeoutError:
            if loop.time() < deadline:  # not the deadline's: the channel layer's own
                raise
            return
        clock = RUNNING.clocks.get(str(message.get("run")))
        if message.get("type") == "run.cancel" and clock is not None and clock.loop is loop:
            clock.interrupt(Cancelled(by=str(message.get("by") or "")))


async def drain(grace: float) -> int:
    """Stop starting runs; give running ones `grace` seconds to finish, then interrupt the rest and
    wait (a little) for them to settle. Returns how many had to be interrupted."""
    RUNNING.draining = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while RUNNING.clocks and loop.time() < deadline:
        await asyncio.sleep(0.05)
    interrupted = len(RUNNING.clocks)
    for clock in list(RUNNING.clocks.values()):
        clock.interrupt(Interrupted())
    deadline = loop.time() + SETTLE_SECONDS
    while RUNNING.clocks and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return interrupted
