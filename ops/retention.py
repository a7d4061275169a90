"""Retention: a run's prompt and output are cleared once they are older than LLMHUB_RETENTION_DAYS.

Only the text goes: the run row (model, status, tokens, cost), its usage row and the daily roll-ups
stay forever, so spend, budgets and invoices never change. Runs still in progress are left alone.
Each pass that clears something writes one audit entry with the count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit import log
from usage.models import Run

BATCH = 500  # runs cleared per transaction: SQLite's write lock is never held for long


@dataclass(frozen=True)
class Retention:
    """The policy, as the audit entry names it."""

    days: int

    @property
    def pk(self) -> str:
        return f"{self.days} days"


def clearable(cutoff: datetime):
    """Finished runs created before `cutoff` that still hold a prompt or an output."""
    finished = [Run.Status.COMPLETED, Run.Status.CANCELLED, Run.Status.FAILED]
    return Run.objects.filter(created_at__lt=cutoff, status__in=finished).filter(
        ~Q(output="") | ~Q(messages=[])
    )


def apply(days: int, now: datetime | None = None, actor: object = "system", batch: int = BATCH) -> int:
    """Clear the text of runs older than `days` days; returns how many runs were cleared."""
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    cleared, last = 0, 0
    while True:
        with transaction.atomic():
            pks = list(
                clearable(cutoff).filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:batch]
            )
            if not pks:
                break
            last = pks[-1]
            # Filtered again: another process may have cleared some of them meanwhile.
            cleared += clearable(cutoff).filter(pk__in=pks).update(messages=[], output="")
    if cleared:
        details = {"runs_cleared": cleared, "older_than": cutoff.isoformat(), "days": days}
        log.record(actor, "retention_applied", Retention(days), after=details)
    return cleared


def apply_configured() -> int:
    """The periodic job: LLMHUB_RETENTION_DAYS as configured (0: nothing)."""
    return apply(settings.LLMHUB_RETENTION_DAYS)
