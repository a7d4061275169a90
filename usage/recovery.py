"""Runs always end: a run whose lease ran out (its server was killed, crashed or lost) is ended as
interrupted, its hold released, its checkpointed text and its prompt charged, its page saying what
happened and offering to run it again.

Every server process runs recover() at start-up and then periodically (llmhub/server.py), and
`manage.py recover_runs` runs it once.
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone

from usage import budgets, runs, tokens
from usage.events import Interrupted
from usage.models import Run

logger = logging.getLogger(__name__)


def recover(now=None) -> int:
    """End every run whose lease ran out as interrupted, charged for its checkpointed text and its
    prompt; and requests from the API that never started before their server died. Returns how
    many runs it ended."""
    now = now or timezone.now()
    expired = Run.objects.filter(status=Run.Status.STREAMING).filter(
        Q(reservation_expires_at__lt=now) | Q(reservation_expires_at__isnull=True)
    )
    ended = 0
    for run in expired.select_related("team", "user", "api_key"):
        model, dialect = _model_of(run)
        run.status, run.error_message = Run.Status.INTERRUPTED, Interrupted().message(bool(run.output))
        run.error_action = "continue" if run.output else "retry"
        run.input_tokens = run.estimated_input_tokens
        run.output_tokens = min(tokens.count_text(run.output, model, dialect), run.max_tokens)
        try:
            runs.settle(run, expired_before=now)
        except runs.RunTaken:
            continue  # it settled itself, or another process recovered it first
        ended += 1
    unstarted = Run.objects.filter(
        status=Run.Status.PENDING, api_key__isnull=False, created_at__lt=now - 2 * budgets.lease_length()
    )
    return ended + unstarted.update(
        status=Run.Status.INTERRUPTED, error_message=str(Interrupted(started=False)), finished_at=now
    )


def _model_of(run: Run) -> tuple[str, str]:
    from providers.models import Provider

    provider_id, _, model = (run.model_used or run.model_requested).partition("/")
    dialect = Provider.objects.filter(pk=provider_id).values_list("dialect", flat=True).first()
    return model, dialect or ""


async def keep_recovering() -> None:
    """recover() now, then every LLMHUB_RECOVERY_SECONDS, for as long as the server runs."""
    while True:
        try:
            ended = await database_sync_to_async(recover, thread_sensitive=False)()
        except DatabaseError:
            logger.exception("Recovering interrupted runs failed; trying again later")
        else:
            if ended:
                logger.info("Ended %d interrupted run(s) whose server had stopped", ended)
        await asyncio.sleep(settings.LLMHUB_RECOVERY_SECONDS)
