"""Retention: a run's prompt and output are cleared once they are older than LLMHUB_RETENTION_DAYS.

Only the text goes: the run row (model, status, tokens, cost), its usage row and the daily roll-ups
stay forever, so spend, budgets and invoices never change. A run never started by then is cancelled
with its text (it could not run without it); a run in progress is left alone. Each pass that clears
something writes one audit entry with the counts.
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


NOT_STARTED = "Not started within the retention period: its prompt was removed."


def clearable(cutoff: datetime):
    """Runs created before `cutoff`, finished or never started, that still hold a prompt or an output."""
    idle = [Run.Status.PENDING, Run.Status.COMPLETED, Run.Status.CANCELLED, Run.Status.FAILED]
    return Run.objects.filter(created_at__lt=cutoff, status__in=idle).filter(~Q(output="") | ~Q(messages=[]))


def apply(days: int, now: datetime | None = None, actor: object = "system", batch: int = BATCH) -> int:
    """Clear the text of runs older than `days` days; returns how many runs were cleared."""
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    cleared, cancelled, last = 0, 0, 0
    while True:
        with transaction.atomic():
            pks = list(
                clearable(cutoff).filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:batch]
            )
            if not pks:
                break
            last = pks[-1]
            # Filtered again: another process may have cleared (or started) some of them meanwhile.
            batch_runs = clearable(cutoff).filter(pk__in=pks)
            cancelled += batch_runs.filter(status=Run.Status.PENDING).update(
                messages=[], output="", status=Run.Status.CANCELLED, error_message=NOT_STARTED
            )
            cleared += batch_runs.update(messages=[], output="")
    cleared += cancelled
    if cleared:
        details = {
            "runs_cleared": cleared,
            "not_started_cancelled": cancelled,
            "days": days,
            "older_than": cutoff.isoformat(),
        }
        log.record(actor, "retention_applied", Retention(days), after=details)
    return cleared


def apply_configured() -> int:
    """The periodic job: LLMHUB_RETENTION_DAYS as configured (0: nothing)."""
    return apply(settings.LLMHUB_RETENTION_DAYS)
