"""Runs: price a generation before it starts, stream it, cancel it, and charge exactly what it used.

The page, the API and the command line only relay; everything a run does happens here. The usage row
of a run is committed before its final state is handed back, so a finished run a user saw always
has it. Whatever happens (a provider's fault, a deadline, a cancel from any socket, the server's
shutdown, a bug of ours), a started run ends the same way: its status and a message saved, its
hold released, the text it delivered charged, and one Ended event handed back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import TypeVar

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import DatabaseError, transaction

from accounts.models import User
from llmhub import conf, statements
from llmhub.database import UNAVAILABLE
from llmhub.hops import hop
from ops import observe
from providers import breaker
from providers.base import (
    Delta,
    Finished,
    FinishReason,
    GenerationRequest,
    Message,
    ProviderAdapter,
    ToolCallDelta,
)
from providers.errors import CircuitOpen, ModelNotAvailable, ProviderError
from providers.registry import registry
from usage import access, alerts, budgets, fallback, leases, live, records
from usage.answers import Answer
from usage.ceiling import Limits, OutputCeiling, charge
from usage.clock import RunClock
from usage.estimates import (
    Estimate,
    RunRefused,
    UnsupportedFields,
    available_model,
    create_run,
    estimate,
    price_run,
)
from usage.events import Cancelled, DatabaseUnavailable, Ended, HubError, Interrupted, Started, Stop
from usage.flow import Flow
from usage.models import FallbackPolicy, Run

logger = logging.getLogger(__name__)
T = TypeVar("T")
# Pricing a run before it starts lives in usage/estimates.py; these names are the engine's contract.
__all__ = [
    "Estimate",
    "RunRefused",
    "UnsupportedFields",
    "available_model",
    "create_run",
    "estimate",
    "price_run",
    "plan",
    "stream",
    "abandon",
    "settle",
]


def get_for_user(user: User, run_uuid: str) -> Run | None:
    """A run the user may watch (usage.access decides; access.can_control says who starts it)."""
    run = Run.objects.select_related("team").filter(uuid=run_uuid).first()
    if run is None or not access.can_see(user, run):
        return None
    return run


aget_for_user = sync_to_async(get_for_user)


class RunTaken(Exception):
    """A run already settled elsewhere: recovered after its lease ran out, or ended by itself."""


Ask = Callable[["fallback.Question"], Awaitable[bool]]
Event = Started | Delta | ToolCallDelta | fallback.Waiting | fallback.Question | Ended
Begun = tuple[ProviderAdapter, Limits]  # an attempt's adapter and limits, its reservation held
# A run's plan (its fallback policy, the models to try, its first attempt begun or what beginning it
# raised), or what planning raised: made by plan(), off the loop.
Planned = tuple[FallbackPolicy, list[str], Begun | Exception] | Exception


async def stream(run: Run, ask: Ask | None = None, planned: Planned | None = None) -> AsyncIterator[Event]:
    """Run a pending run: yields Started once it holds its reservation, its text as it arrives
    (never more than its cap), then one Ended with its usage settled.

    A retryable failure before the first token is retried (countdown ticks are yielded while it
    waits), then the fallback models are tried in order; in ask mode a Question is yielded and
    `ask` must consent first. Once text has been shown, a failure ends the run with the text kept:
    it is never silently restarted elsewhere. A cancel (sent to the run's group from any socket, or
    the iterating task cancelled) closes the upstream connection at once; the text so far is kept
    and the tokens it used are charged.

    `planned` is plan(run), made by a caller already on a database thread (the API's front, in the
    trip that wrote the run): it is handled here as if made here, after the drain is checked.
    """
    flow = Flow(run, RunClock(conf.setting("LLMHUB_RUN_TIME_LIMIT"), conf.setting("LLMHUB_IDLE_TIMEOUT")))
    async with live.running(run, flow.clock):
        try:
            async for event in _attempts(flow, ask, planned):
                yield event
        except Stop as stop:
            flow.stop(stop)
        except (asyncio.CancelledError, GeneratorExit):
            # The task running it was cancelled (a closed tab, a client that hung up, Ctrl-C), or
            # its caller dropped it: settled all the same, out of reach of a second cancel.
            flow.stop(Interrupted() if live.draining() else Cancelled())
            await asyncio.shield(_close(flow))
            raise
        except Exception:  # noqa: BLE001 - every failure ends the run the same way, logged
            logger.exception("Run %s failed inside the hub", run.uuid)
            flow.stop(HubError("The hub failed while running this (the error is logged)."))
        yield await _close(flow)


async def _attempts(flow: Flow, ask: Ask | None, planned: Planned | None) -> AsyncIterator[Event]:
    """The requested model, then each fallback, until one ends the run."""
    run = flow.run
    if live.draining():  # a plan made already is given up: its hold released as the run ends
        raise Interrupted(started=False)
    try:
        if planned is None:
            planned = await hop(plan, run)
        policy, models, first = _outcome(planned)
    except CircuitOpen as skipped:  # every model it may use is cooling off after repeated failures
        flow.failures.append(skipped)
        flow.end(Run.Status.FAILED, str(skipped), skipped.action, skipped)
        return
    except DatabaseError:  # its plan could not be read (the connection cut, the database down)
        logger.exception("Run %s: its fallback plan could not be read", run.uuid)
        raise DatabaseUnavailable() from None
    for index, ref in enumerate(models):
        if index > 0:
            if policy.ask_before_switching and ask is not None:
                question = await sync_to_async(fallback.question)(run, ref, flow.reason)
                yield question
                if not await flow.clock.wait(lambda q=question: ask(q)):
                    action = flow.provider_error.action if flow.provider_error else "retry"
                    flow.end(
                        Run.Status.FAILED, f"{flow.reason} The run stopped: you chose not to switch.", action
                    )
                    return
            await sync_to_async(fallback.record_switch)(run, models[index - 1], ref, flow.reason)
            observe.fell_back(models[index - 1], ref)
        try:
            # Off the request's thread, so runs waiting for the budget lock do not queue behind each
            # other's other work; hop() closes that thread's connection when due.
            if index == 0:  # begun with the plan, in the same trip
                adapter, flow.limits = _outcome(first)
            else:
                adapter, flow.limits = await hop(_begin, run, ref, not flow.started)
        except budgets.BudgetRefused as refused:
            run.attempts = [*run.attempts, {"model": ref, "skipped": str(refused)}]
            flow.failures.append(refused)
            continue
        except ProviderError as unusable:  # its saved key cannot be used: nothing was sent
            run.attempts = [*run.attempts, {"model": ref, "error": unusable.user_message}]
            flow.failures.append(unusable)
            continue
        except DatabaseError:
            logger.exception("Run %s: its reservation could not be written", run.uuid)
            raise DatabaseUnavailable() from None
        if not flow.started:
            flow.started, flow.keeper = True, leases.Keeper(flow).start()
            yield Started(run)
        async for event in _attempt(flow, policy, adapter):
            yield event
        if flow.ended:
            return
        run.attempts = [*run.attempts, {"model": ref, "error": flow.reason}]
    await _fail(flow, several=len(models) > 1)


async def _attempt(
    flow: Flow, policy, adapter: ProviderAdapter
) -> AsyncIterator[Delta | ToolCallDelta | fallback.Waiting]:
    """One model with its retries. Yields text (cut at the cap) and countdown ticks; ends the run
    (flow.ended), or records why the model gave up before any text (for the caller to fall back)."""
    run, clock = flow.run, flow.clock
    ref = run.model_used or run.model_requested
    request = GenerationRequest.from_stored(
        ref.partition("/")[2],
        run.messages,
        run.options,
        max_tokens=flow.limits.output_tokens,
        temperature=float(run.temperature) if run.temperature is not None else None,
        stream=True,
    )
    flow.provider, waited = adapter.display_name, 0.0
    for attempt in range(policy.retry_count + 1):
        # The cap holds for every choice together (n > 1 reserved n times the cap), tool calls included.
        cap = flow.limits.output_tokens * request.n
        flow.ceiling, flow.answer = OutputCeiling(cap, request.model, adapter.dialect), Answer()
        clock.progress()
        try:
            async with aclosing(adapter.events(request)) as events:
                while (event := await clock.next(events, adapter.display_name)) is not None:
                    flow.reached = True
                    if isinstance(event, Finished):
                        flow.usage, flow.finish_reason = event.usage, event.finish_reason
                        flow.answer.finishes, flow.answer.stop_sequence = event.choices, event.stop_sequence
                    elif admitted := _admit(flow, event):
                        clock.progress()
                        run.first_token_at = run.first_token_at or conf.now()  # saved as it settles
                        flow.answer.add(admitted)
                        yield admitted
                    if flow.ceiling.exceeded:  # the provider went past the cap: hang up on it
                        flow.finish_reason = FinishReason.LENGTH
                        run.error_message = (
                            f"Stopped at the cap of {flow.limits.output_tokens} output tokens."
                        )
                        break
            flow.end(Run.Status.COMPLETED)
            flow.answered_by = adapter.provider_id
            return
        except ProviderError as error:
            skipped = await sync_to_async(breaker.record_failure)(adapter.provider_id, error)
            if flow.shown:  # text was shown: keep it, charge it, and let the user decide what next
                flow.end(
                    Run.Status.FAILED, f"{error.user_message} The text so far is kept.", "continue", error
                )
                return
            flow.failures.append(error)
            wait = fallback.backoff(attempt, error, waited, policy) if error.retryable else None
            if wait is None or attempt == policy.retry_count or skipped:
                return
            observe.retried(ref)
            async for tick in _countdown(wait, error, clock, ref, attempt + 2, policy.retry_count + 1):
                yield tick
            waited += wait


async def _countdown(
    seconds: float, error: ProviderError, clock: RunClock, ref: str, attempt: int, attempts: int
) -> AsyncIterator[fallback.Waiting]:
    remaining = seconds
    while remaining > 0:
        message = fallback.waiting_message(error, math.ceil(remaining), ref, attempt, attempts)
        yield fallback.Waiting(math.ceil(remaining), message)
        step = min(1.0, remaining)
        await clock.sleep(step)
        remaining -= step


async def _fail(flow: Flow, several: bool) -> None:
    """Every model gave up before any text: the last provider error says why, else the budget."""
    error = flow.provider_error
    if error is None:
        refusal = flow.failures[-1]
        flow.end(Run.Status.FAILED, str(refusal), "retry", refusal)
        return
    if isinstance(error, ModelNotAvailable) and not error.suggestion:
        error.suggestion = await sync_to_async(fallback.suggestion)(flow.run)
    message = error.user_message + (" Every fallback model failed too." if several else "")
    flow.end(Run.Status.FAILED, message, error.action, error)


def _admit(flow: Flow, event: Delta | ToolCallDelta) -> Delta | ToolCallDelta | None:
    """The event as far as it fits under the cap (cut short at it), or None past it."""
    if isinstance(event, Delta):
        text = flow.ceiling.admit(event.text)
        if not text:
            return None
        return event if text == event.text else replace(event, text=text)  # whole, nearly always
    piece = event.name + event.arguments
    admitted = flow.ceiling.admit(piece) if piece else ""
    if piece and not admitted:
        return None
    if admitted == piece:
        return event
    name = admitted[: len(event.name)]
    return replace(event, name=name, arguments=admitted[len(name) :])


def plan(run: Run) -> Planned:
    """_plan's answer, or the exception it raised (every one: stream() handles it where it handles
    its own), so that a caller may make it in a trip to the database it makes anyway."""
    try:
        return _plan(run)
    except Exception as error:  # noqa: BLE001 - not handled here: raised again by stream()
        return error


async def abandon(run: Run) -> Ended:
    """A run its caller gives up before stream() (the API's client hung up while the run was being
    planned): ended as cancelled before it started, like one cancelled during its plan in stream(),
    its hold released and nothing charged; nothing was sent."""
    flow = Flow(run, RunClock(conf.setting("LLMHUB_RUN_TIME_LIMIT"), conf.setting("LLMHUB_IDLE_TIMEOUT")))
    flow.stop(Cancelled())
    return await _close(flow)


def _plan(run: Run) -> tuple[FallbackPolicy, list[str], Begun | Exception]:
    """The models to try (fallback.plan) and the first one's attempt begun, in one trip to the
    database: what beginning it raised is handed back, for _attempts to handle as a later model's.
    A run not saved yet (the API's) is saved with its reservation; when its first model holds
    nothing, it is saved as it stands, for what comes next to know it (a fallback's audit entry)."""
    policy, models = fallback.plan(run)
    try:
        return policy, models, _begin(run, models[0], starting=True)
    except (budgets.BudgetRefused, ProviderError) as refused:
        if run.pk is None:
            statements.insert(run)
        return policy, models, refused
    except DatabaseError as failed:
        return policy, models, failed


def _outcome(begun: T | Exception) -> T:
    if isinstance(begun, Exception):
        raise begun
    return begun


def _begin(run: Run, ref: str, starting: bool) -> Begun:
    """An attempt on `ref` in one trip to the database: its maximum cost reserved (BudgetRefused
    when a budget cannot cover it), the run marked started on its first attempt, and the adapter."""
    previous = run.model_used, run.status, run.started_at
    run.model_used = ref  # the reservation is for this model
    if starting:  # saved with the hold, in its UPDATE
        run.status, run.started_at = Run.Status.STREAMING, conf.now()
    try:
        limits = _reserve(run, ref, also=("status", "started_at") if starting else ())
    except Exception:  # refused, or the database failed: nothing of it was saved
        run.model_used, run.status, run.started_at = previous
        raise
    provider_id, _, model = ref.partition("/")
    return registry.get(provider_id, only_model=model), limits


def _reserve(run: Run, ref: str, also: tuple[str, ...] = ()) -> Limits:
    """Hold this attempt's maximum cost: its input estimate and its cap, at its price; a fallback
    model is priced for the same prompt (with its own tokenizer and output limit)."""
    limits = Limits(run.estimated_input_tokens, run.max_tokens)
    if ref != run.model_requested:
        entry, dialect = available_model(run.team, ref)
        messages = [Message.from_json(m) for m in run.messages]
        max_tokens = min(run.max_tokens, entry.info.max_output)
        priced = estimate(entry, dialect, messages, max_tokens, options=run.options)
        run.max_cost_usd, limits = priced.max_cost, Limits(priced.input_tokens, priced.max_output_tokens)
    budgets.reserve(run, ref.partition("/")[0], also)
    return limits


async def _close(flow: Flow) -> Ended:
    """Settle the run as it ended: the text delivered and the usage it is charged for, its hold
    released, in one transaction. A settlement the database refuses is reported, never hidden."""
    run = flow.run
    run.finish_reason = flow.finish_reason  # not stored: the API's answer reads it
    run.refusal = flow.error if isinstance(flow.error, budgets.BudgetRefused) else None  # for metrics
    if flow.keeper is not None:
        await flow.keeper.stop()
    run.finished_at = conf.now()
    try:
        if flow.started:
            _charge(flow)
            await hop(_settle, run, flow.answered_by)
        else:
            await hop(_release, run)
    except UNAVAILABLE as fault:
        if not flow.started:  # its end waits in the spool: its page says why once the database is back
            with contextlib.suppress(OSError):  # no spool either: postpone() logged it
                await sync_to_async(records.postpone)(run, reason=str(fault))
                return Ended(run, flow.error, flow.finish_reason)
        logger.exception("Run %s: its settlement could not be written", run.uuid)
        return Ended(run, flow.error, flow.finish_reason, settled=False)
    except (DatabaseError, OSError):  # neither the database nor the spool took it (records.py logged it)
        logger.exception("Run %s: its settlement could not be written", run.uuid)
        return Ended(run, flow.error, flow.finish_reason, settled=False)
    except RunTaken:  # recovered meanwhile, as if its server had died: as recovery left it
        await run.arefresh_from_db()
        return Ended(run, HubError(run.error_message), flow.finish_reason)
    if run.usage_warning:
        try:
            await database_sync_to_async(alerts.usage_over_cap)(run)
        except DatabaseError:
            logger.exception("Run %s: the alert about its usage could not be written", run.uuid)
    return Ended(run, flow.error, flow.finish_reason)


def _charge(flow: Flow) -> None:
    run = flow.run
    # Our own count of the text (a tokenizer pass over all of it) is charged only without the
    # provider's: not counted when the provider reported its usage.
    delivered = flow.ceiling.billed() if flow.ceiling and flow.usage is None else 0
    # The request reached the provider: its prompt is billed even if no text came back yet.
    billed = flow.shown or (flow.reached and run.status != Run.Status.FAILED)
    billed = billed or run.status in (Run.Status.CANCELLED, Run.Status.INTERRUPTED)
    counts, run.usage_warning = charge(flow.usage, delivered, flow.limits, flow.provider, billed)
    run.output, run.answer = (flow.answer.text(), flow.answer.stored()) if flow.answer else ("", {})
    run.input_tokens, run.output_tokens = counts.input, counts.output
    run.cache_read_tokens, run.cache_write_tokens = counts.cache_read, counts.cache_write
    run.reasoning_tokens = counts.reasoning


def _settle(run: Run, answered_by: str | None) -> None:
    """The settlement, which notes the provider that answered as working (its circuit closes) in
    its own statements (usage/records.py): one trip to the database."""
    settle(run, answered_by=answered_by)


def _release(run: Run) -> None:
    run.reserved_usd = run.reservation_expires_at = None
    run.save()
    transaction.on_commit(partial(observe.run_finished, run), robust=True)


def settle(run: Run, expired_before: datetime | None = None, answered_by: str | None = None) -> bool:
    """Claim a streaming run and settle it (usage/records.py: retried, spooled while the database
    cannot be written): RunTaken when it was settled already. With `expired_before`, only while its
    lease has run out by then (recovery of a dead run). False when the settlement was spooled.
    `answered_by`: the provider that answered, whose circuit closes."""

    where, params = f"{statements.column(Run, 'status')} = %s", [Run.Status.STREAMING]
    if expired_before is not None:
        expires = statements.column(Run, "reservation_expires_at")
        where += f" AND ({expires} < %s OR {expires} IS NULL)"
        params.append(statements.adapt(Run, "reservation_expires_at", expired_before))
    claim = records.Claim(where, params, partial(RunTaken, run.uuid), answered_by)
    return records.settle(run, claim=claim)
