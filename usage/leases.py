"""Leases: a streaming run holds its reservation as a short lease (LLMHUB_RUN_LEASE_SECONDS) that it
renews while it lives, and checkpoints the text it has delivered. When its process dies, the lease
runs out and usage/recovery.py ends the run, charged for that text."""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

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
        self._task: asyncio.Task | None = None
        self._saved = 0  # characters of text checkpointed

    def start(self) -> Keeper:
        self._task = asyncio.create_task(self._keep())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # the task's own CancelledError is not ours to raise

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await asyncio.sleep(settings.LLMHUB_CHECKPOINT_SECONDS)
            text = self.flow.text
            changed = len(text) != self._saved
            if not changed and loop.time() - renewed < settings.LLMHUB_LEASE_RENEW_SECONDS:
                continue
            try:
                held = await database_sync_to_async(renew, thread_sensitive=False)(
                    self.flow.run.pk, text if changed else None
                )
            except DatabaseError:
                logger.exception("Run %s: its lease and text could not be written", self.flow.run.uuid)
                self.flow.clock.interrupt(
                    HubError("The hub's database could not be written, so the run stopped.")
                )
                return
            if not held:
                self.flow.clock.interrupt(
                    HubError(
                        "The hub was too busy to renew this run's hold on the budget in time, so the run stopped."
                    )
                )
                return
            renewed, self._saved = loop.time(), len(text)


def renew(run_pk: int, output: str | None) -> bool:
    """Extend a streaming run's lease (and save its delivered text). False when the run is no longer
    streaming or its lease already ran out: others may have been given the budget it held."""
    now = timezone.now()
    fields = {"reservation_expires_at": now + budgets.lease_length()}
    if output is not None:
        fields["output"] = output
    held = Run.objects.filter(pk=run_pk, status=Run.Status.STREAMING, reservation_expires_at__gte=now)
    return bool(held.update(**fields))
