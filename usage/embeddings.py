"""Embedding runs: the run engine's entry for POST /v1/embeddings.

An embedding request is a Run like any generation, with input tokens only and no text: it is priced
before it starts (every input counted, at the model's input price), its maximum cost is held against
the budgets before the provider is called, and it is settled by `runs.settle` (usage row, roll-up,
retries, spool) with the provider's count, never above what was held. Every failure ends the run with
its message saved and its hold released. There is no fallback and no retry: a failed call is answered
at once, and the program retries as it would with OpenAI.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from accounts.models import Team
from providers import breaker
from providers.base import ProviderAdapter, TokenCount
from providers.catalog_entries import CatalogEntry
from providers.embedding import EmbeddingRequest, Embeddings
from providers.errors import ProviderError
from providers.pricing import cost, worst_input_price
from providers.registry import registry
from usage import budgets, leases, runs, tokens
from usage.ceiling import Limits, charge
from usage.estimates import RunRefused
from usage.events import Cancelled, DatabaseUnavailable, Ended, HubError
from usage.models import CallKind, Run

logger = logging.getLogger(__name__)


class InputTooLong(RunRefused):
    """An input longer than the model takes (its context window), named by its index."""


@dataclass(frozen=True)
class Embedded:
    ended: Ended
    result: Embeddings | None  # the vectors, when the run completed


def price_run(
    team: Team,
    request: EmbeddingRequest,
    ref: str,
    available: tuple[CatalogEntry, str],
    api_key=None,
    request_id: str = "",
) -> Run:
    """A pending embedding run with its price, not saved yet: every input counted with the model's tokenizer (or
    an estimate that errs high), at the input price; InputTooLong names an input over the limit."""
    entry, dialect = available
    counts = [_count(item, entry.info.id, dialect) for item in request.inputs]
    for index, counted in enumerate(counts):
        if counted > entry.info.context_window:
            raise InputTooLong(
                f"{ref} takes at most {entry.info.context_window:,} tokens per input; input[{index}] "
                f"has about {counted:,}. Split it into shorter pieces."
            )
    total, info = sum(counts), entry.info
    price = cost(worst_input_price(info), info.output_per_1m, total, 0) if info.priced else None
    return Run(
        team=team,
        api_key=api_key,
        request_id=request_id,
        model_requested=ref,
        kind=CallKind.EMBEDDINGS,
        messages=[],
        max_tokens=0,
        estimated_input_tokens=total,
        estimated_cost_usd=price,
        max_cost_usd=price,
    )


def _count(item: str | tuple[int, ...], model: str, dialect: str) -> int:
    return tokens.count_text(item, model, dialect) if isinstance(item, str) else len(item)


async def embed(run: Run, request: EmbeddingRequest) -> Embedded:
    """Run a pending embedding run: reserve, call the provider, settle. The Ended says how it went
    (as runs.stream's does, so the API answers failures the same way)."""
    try:
        adapter = await database_sync_to_async(_begin, thread_sensitive=False)(run)
    except budgets.BudgetUnavailable as unavailable:
        return Embedded(Ended(run, unavailable), None)
    except DatabaseError:
        logger.exception("Embedding run %s: its reservation could not be written", run.uuid)
        return Embedded(Ended(run, DatabaseUnavailable()), None)
    except (budgets.BudgetRefused, ProviderError) as refused:
        message = refused.user_message if isinstance(refused, ProviderError) else str(refused)
        await database_sync_to_async(refuse, thread_sensitive=False)(run, message)
        return Embedded(Ended(run, refused), None)
    keeper = asyncio.create_task(_keep_lease(run))
    result: Embeddings | None = None
    error: Exception | None = None
    try:
        result = await adapter.embed(request)
        await database_sync_to_async(breaker.record_success)(adapter.provider_id)
    except ProviderError as failed:
        error = failed
        await database_sync_to_async(breaker.record_failure)(adapter.provider_id, failed)
    except (asyncio.CancelledError, GeneratorExit):
        # The client hung up: the provider may have been paid, so the input estimate is charged.
        _finish(run, Cancelled(), None, adapter)
        await asyncio.shield(_settle(run, keeper, Cancelled()))
        raise
    except Exception:  # noqa: BLE001 - every failure ends the run the same way, logged
        logger.exception("Embedding run %s failed inside the hub", run.uuid)
        error = HubError("The hub failed while running this (the error is logged).")
    _finish(run, error, result, adapter)
    ended = await _settle(run, keeper, error)
    return Embedded(ended, result if ended.completed else None)


def _begin(run: Run) -> ProviderAdapter:
    """The adapter, then the run's maximum cost held and the run marked started, in one trip."""
    provider_id, _, model = run.model_requested.partition("/")
    adapter = registry.get(provider_id, only_model=model)  # a key that cannot be used: nothing held
    run.model_used = run.model_requested
    budgets.reserve(run, provider_id)
    run.status, run.started_at = Run.Status.STREAMING, timezone.now()
    with budgets.database_writable():
        run.save(update_fields=["status", "started_at", "model_used"])
    return adapter


def refuse(run: Run, message: str) -> None:
    run.status, run.error_message, run.finished_at = Run.Status.FAILED, message, timezone.now()
    run.reserved_usd = run.reservation_expires_at = None
    run.save()


def _finish(run: Run, error: Exception | None, result: Embeddings | None, adapter: ProviderAdapter) -> None:
    """The run's final fields: its status and message, and the tokens it is charged."""
    run.finished_at = timezone.now()
    limits = Limits(run.estimated_input_tokens, 0)
    if isinstance(error, Cancelled):
        run.status, run.error_message, run.error_action = error.status, str(error), error.action
        counted, _ = charge(None, 0, limits, adapter.display_name, True)
    elif error is not None:  # the provider refused or failed: an error answer is not billed
        run.status, run.error_action = Run.Status.FAILED, getattr(error, "action", "retry")
        run.error_message = error.user_message if isinstance(error, ProviderError) else str(error)
        counted = TokenCount(0, 0)
    else:
        reported = None if result.input_tokens is None else TokenCount(result.input_tokens, 0)
        counted, run.usage_warning = charge(reported, 0, limits, adapter.display_name, True)
        run.status = Run.Status.COMPLETED
        dimensions = len(result.vectors[0]) if result.vectors else 0
        run.output = f"{len(result.vectors):,} embeddings of {dimensions:,} dimensions"
    run.input_tokens, run.output_tokens = counted.input, 0


async def _settle(run: Run, keeper: asyncio.Task, error: Exception | None) -> Ended:
    keeper.cancel()
    await asyncio.wait([keeper])
    try:
        await database_sync_to_async(runs.settle, thread_sensitive=False)(run)
    except (DatabaseError, OSError):  # neither the database nor the spool took it (logged there)
        logger.exception("Embedding run %s: its settlement could not be written", run.uuid)
        return Ended(run, error, settled=False)
    except runs.RunTaken:  # recovered meanwhile (its lease ran out): as recovery left it
        await run.arefresh_from_db()
        return Ended(run, HubError(run.error_message))
    return Ended(run, error)


async def _keep_lease(run: Run) -> None:
    """Renew the hold while the provider works (a long batch on a slow server), so that recovery,
    which settles runs whose lease ran out, never takes a live one."""
    while True:
        await asyncio.sleep(settings.LLMHUB_LEASE_RENEW_SECONDS)
        try:
            await database_sync_to_async(leases.renew, thread_sensitive=False)(run.pk, None)
        except DatabaseError:
            logger.exception("Embedding run %s: its lease could not be renewed", run.uuid)
