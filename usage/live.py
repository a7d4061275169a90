"""The runs this process is running: cancel addressed to a run, and the drain at shutdown.

A run listens to its channel-layer group `run-<uuid>` while it runs, so a cancel sent to the group
stops it from any socket of any process behind the same REDIS_URL (in one process, the in-memory
layer does the same). On SIGTERM the server drains: no run starts any more, running ones get a
grace period to finish, then each is interrupted where it waits and ends settled.
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
# After the grace period, how long interrupted runs may take to write their settlement.
SETTLE_SECONDS = 10.0


class _Runs:
    def __init__(self) -> None:
        self.clocks: dict[str, RunClock] = {}
        self.draining = False


RUNNING = _Runs()


def group(run: Run) -> str:
    return f"run-{run.uuid}"


def draining() -> bool:
    return RUNNING.draining


def count() -> int:
    return len(RUNNING.clocks)


@contextlib.asynccontextmanager
async def running(run: Run, clock: RunClock) -> AsyncIterator[None]:
    """Register a run for the drain and listen to its group for a cancel while it runs."""
    RUNNING.clocks[str(run.uuid)] = clock
    listener = asyncio.create_task(_listen(group(run), clock))
    try:
        yield
    finally:
        RUNNING.clocks.pop(str(run.uuid), None)
        listener.cancel()
        await asyncio.wait([listener])


async def cancel(run: Run, by: str) -> None:
    """Ask the run to stop, wherever it runs; a run that is not running anywhere ignores it."""
    await get_channel_layer().group_send(group(run), {"type": "run.cancel", "by": by})


async def _listen(name: str, clock: RunClock) -> None:
    layer = get_channel_layer()
    channel = ""
    try:
        channel = await layer.new_channel()
        await layer.group_add(name, channel)
        while True:
            message = await layer.receive(channel)
            if message.get("type") == "run.cancel":
                clock.interrupt(Cancelled(by=str(message.get("by") or "")))
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - the run goes on; only a cancel from elsewhere is lost
        logger.exception("Run group %s: cannot listen for a cancel from other sockets", name)
    finally:
        if channel:
            with contextlib.suppress(Exception):
                await layer.group_discard(name, channel)


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
