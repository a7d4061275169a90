"""Periodic work inside each server process: `register(name, every_seconds, func)`.

Jobs are registered at start-up (an app's `ready()`); the runner is one asyncio task per server
process, started by the ASGI application (`maintenance.serving(app)` in llmhub/asgi.py) at lifespan
start-up where the server sends it (uvicorn), else with the first connection (daphne). A job is a
plain function (run in a worker thread, with the database) or a coroutine function. A failing job is
logged with its traceback and tried again at its next turn; it never stops the others. With several
processes every process runs every job, so jobs must be safe to run concurrently (retention is:
its updates only clear what is still there).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from asgiref.sync import iscoroutinefunction
from channels.db import database_sync_to_async

from llmhub import conf

log = logging.getLogger("llmhub.maintenance")


@dataclass
class Job:
    name: str
    every_seconds: float
    func: Callable
    due_at: float = 0.0
    runs: int = field(default=0, compare=False)


class Maintenance:
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.task: asyncio.Task | None = None

    def register(self, name: str, every_seconds: float, func: Callable) -> None:
        """Run `func` every `every_seconds` in each server process; a name registers once."""
        # The first turn comes after a random part of the interval: processes started together
        # do not all work at the same moment.
        first = time.monotonic() + random.uniform(0, min(every_seconds, 60))  # noqa: S311 - spread, not security
        self.jobs[name] = Job(name, every_seconds, func, due_at=first)

    def start(self) -> None:
        """Start the runner on the running event loop, unless it already runs there."""
        loop = asyncio.get_running_loop()
        if not self.jobs or (self.task is not None and not self.task.done() and self.task.get_loop() is loop):
            return
        self.task = loop.create_task(self.run_forever(), name="llmhub-maintenance")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None

    async def run_forever(self) -> None:
        while True:
            now = time.monotonic()
            for job in list(self.jobs.values()):
                if job.due_at <= now:
                    job.due_at = now + job.every_seconds
                    await self.run(job)
            next_due = min(job.due_at for job in self.jobs.values())
            await asyncio.sleep(max(0.01, next_due - time.monotonic()))

    async def run(self, job: Job) -> None:
        try:
            if iscoroutinefunction(job.func):
                await job.func()
            else:
                await database_sync_to_async(job.func, thread_sensitive=False)()
        except Exception:
            log.exception("Periodic job %s failed; it runs again in %s s.", job.name, job.every_seconds)
        finally:
            job.runs += 1


runner = Maintenance()
register = runner.register


def serving(application: Callable) -> Callable:
    """The ASGI application, starting the runner with the server (LLMHUB_BACKGROUND_TASKS)."""

    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if conf.setting("LLMHUB_BACKGROUND_TASKS"):
            runner.start()
        await application(scope, receive, send)

    return app


async def _lifespan(receive: Callable, send: Callable) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if conf.setting("LLMHUB_BACKGROUND_TASKS"):
                runner.start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await runner.stop()
            await send({"type": "lifespan.shutdown.complete"})
            return
