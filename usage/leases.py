"""Leases: a streaming run holds its reservation as a short lease (LLMHUB_RUN_LEASE_SECONDS) that it
renews while it lives, and checkpoints the text it has delivered. When its process dies, the lease
runs out and usage/recovery.py ends the run, charged for that text."""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.db import DatabaseError

from llmhub import conf
from usage import budgets
from usage.events import HubError
from usage.flow import Flow
from usage.models import Run

logger = logging.getLogger(__name__)


class Keeper:
    """Renews a run's lease and checkpoints its text (at most LLMHUB_CHECKPOINT_SECONDS behind),
    in a task beside the run. A write that fails, or a lease found ended, stops the run."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task | None = None
        self._saved = 0  # characters of text checkpointed

    def start(self) -> Keeper:
        # The task begins at the first checkpoint: most runs end before it, and a timer cancelled
        # costs a fraction of a task started, cancelled and waited for (issue 16).
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(conf.setting("LLMHUB_CHECKPOINT_SECONDS"), self._begin, loop.time())
        return self

    def _begin(self, started: float) -> None:
        self._timer = None
        self._task = asyncio.create_task(self._keep(started))

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # the task's own CancelledError is not ours to raise

    async def _keep(self, renewed: float) -> None:
        """From the first checkpoint on: the lease renewed when the text changed or it is due."""
        loop = asyncio.get_running_loop()
        while True:
            text = self.flow.text
            changed = len(text) != self._saved
            if changed or loop.time() - renewed >= conf.setting("LLMHUB_LEASE_RENEW_SECONDS"):
                if not await self._renew(text if changed else None):
                    return
                renewed, self._saved = loop.time(), len(text)
            await asyncio.sleep(conf.setting("LLMHUB_CHECKPOINT_SECONDS"))

    async def _renew(self, text: str | None) -> bool:
        """Renew the lease (and write the text, if given); False once the run was stopped for it."""
        try:
            held = await database_sync_to_async(renew, thread_sensitive=False)(self.flow.run.pk, text)
        except DatabaseError:
            logger.exception("Run %s: its lease and text could not be written", self.flow.run.uuid)
            self.flow.clock.interrupt(
                HubError("The hub's database could not be written, so the run stopped.")
            )
            return False
        if not held:
            self.flow.clock.interrupt(
                HubError(
                    "The hub was too busy to renew this run's hold on the budget in time, so the run stopped."
                )
            )
        return held


def renew(run_pk: int, output: str | None) -> bool:
    """Extend a streaming run's lease (and save its delivered text). False when the run is no longer
    streaming or its lease already ran out: others may have been given the budget it held."""
    now = conf.now()
    fields = {"reservation_expires_at": now + budgets.lease_length()}
    if output is not None:
        fields["output"] = output
    held = Run.objects.filter(pk=run_pk, status=Run.Status.STREAMING, reservation_expires_at__gte=now)
    return bool(held.update(**fields))
