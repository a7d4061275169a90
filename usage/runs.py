"""Runs: price a generation before it starts, stream it, cancel it, and charge exactly what it used.

The page and the websocket consumer only relay; everything a run does happens here. The usage row of
a run is committed before its final state is handed back, so a finished run a user saw always has it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import transaction
from django.utils import timezone

from accounts.models import Team, User
from ops import observe
from providers.base import Delta, FinishReason, GenerationRequest, Message, ProviderAdapter, TokenCount
from providers.errors import ModelNotAvailable, ProviderError
from providers.models import ProviderModel
from providers.pricing import cost
from providers.registry import CatalogEntry, registry
from usage import budgets, fallback, tokens
from usage.models import Run, UsageRecord
from usage.records import record_usage

# Without history, a run is expected to use this share of its max output tokens.
EXPECTED_OUTPUT_SHARE = Decimal("0.25")
OVERRUN_SLACK = 1.1


class RunRefused(Exception):
    """A run that cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class Estimate:
    input_tokens: int
    exact: bool  # counted with the model's own tokenizer
    expected_output_tokens: int
    max_output_tokens: int
    expected_cost: Decimal | None  # None: the model is unpriced
    max_cost: Decimal | None


def estimate(entry: CatalogEntry, dialect: str, messages: Sequence[Message], max_tokens: int,
             expected_output: int | None = None) -> Estimate:  # fmt: skip
    """The price of a run before it starts: input counted, output expected and at its ceiling."""
    counted = tokens.count_messages(messages, entry.info.id, dialect)
    expected = min(max_tokens, expected_output if expected_output is not None
                   else int(max_tokens * EXPECTED_OUTPUT_SHARE))  # fmt: skip
    info = entry.info
    priced = info.input_per_1m is not None and info.output_per_1m is not None
    return Estimate(
        input_tokens=counted.tokens,
        exact=counted.exact,
        expected_output_tokens=expected,
        max_output_tokens=max_tokens,
        expected_cost=cost(info.input_per_1m, info.output_per_1m, counted.tokens, expected)
        if priced
        else None,
        max_cost=cost(info.input_per_1m, info.output_per_1m, counted.tokens, max_tokens) if priced else None,
    )


def available_model(team: Team, model_ref: str) -> tuple[CatalogEntry, str]:
    """The catalogue entry and dialect of a model the team may run, or RunRefused saying why."""
    row = registry.model_row(model_ref)
    provider = row.provider if row else None
    if provider is None or provider.team_id not in (None, team.pk):  # as accounts.teams.providers_for
        raise RunRefused(f"{model_ref} is not one of your team's models. Pick another model.")
    if not provider.enabled:
        raise RunRefused(
            f"{provider.display_name} is disabled. An admin can enable it in Settings → Providers."
        )
    return registry.entry_for(row), provider.dialect


def create_run(
    user: User | None,
    team: Team,
    model_ref: str,
    messages: Sequence[Message],
    max_tokens: int,
    temperature: Decimal | None = None,
    automation=None,
    api_key=None,
    available: tuple[CatalogEntry, str] | None = None,
    request_id: str = "",
) -> Run:
    """A pending run with its price estimate; it starts only when the user (or the program that
    sent it, with an API key) confirms. `available` is what available_model() already answered
    for this team and model, when the caller asked it first; `request_id` is the x-request-id of
    the request that asked for it."""
    entry, dialect = available or available_model(team, model_ref)
    caps = budgets.caps_for(team, entry.provider_id, api_key.pk if api_key else None)
    max_tokens = max(1, min(max_tokens, entry.info.max_output, caps.hard or max_tokens))
    warning = ""
    if caps.soft is not None and max_tokens > caps.soft:
        warning = (f"This run may write up to {max_tokens:,} tokens, over the soft cap of {caps.soft:,} "
                   f"set by the {caps.soft_from} budget.")  # fmt: skip
    priced = estimate(entry, dialect, messages, max_tokens, expected_output=_typical_output(automation))
    return Run.objects.create(
        warning=warning,
        team=team,
        user=user,
        automation=automation,
        api_key=api_key,
        request_id=request_id,
        model_requested=model_ref,
        messages=[{"role": m.role, "content": m.content} for m in messages],
        max_tokens=max_tokens,
        temperature=temperature,
        estimated_input_tokens=priced.input_tokens,
        estimated_cost_usd=priced.expected_cost,
        max_cost_usd=priced.max_cost,
    )


def _typical_output(automation) -> int | None:
    """The average output of an automation's recent completed runs, when it has some."""
    if automation is None:
        return None
    recent = list(
        automation.runs.filter(status=Run.Status.COMPLETED).values_list("output_tokens", flat=True)[:20]
    )
    return round(sum(recent) / len(recent)) if recent else None


def get_for_user(user: User, run_uuid: str) -> Run | None:
    """A run the user may watch and cancel: one of their team's."""
    run = Run.objects.select_related("team").filter(uuid=run_uuid).first()
    if run is None or not user.is_authenticated or not user.is_team_member(run.team):
        return None
    return run


aget_for_user = sync_to_async(get_for_user)


async def stream(
    run: Run, ask: Ask | None = None
) -> AsyncIterator[Delta | Run | fallback.Waiting | fallback.Question]:
    """Run a pending run: yields the Run once started, its text as it arrives, then the Run again
    when it has finished, its usage recorded.

    A retryable failure before the first token is retried (countdown ticks are yielded while it
    waits), then the fallback models are tried in order; in ask mode a Question is yielded and
    `ask` must consent first. Once text has been shown, a failure ends the run with the text kept:
    it is never silently restarted elsewhere. Cancelling the iterating task closes the upstream
    connection at once; the text so far is kept and the tokens it used are charged.
    """
    policy, models = await sync_to_async(fallback.plan)(run)
    error: ProviderError | None = None
    started = False
    for index, ref in enumerate(models):
        if index > 0:
            if policy.ask_before_switching and ask is not None:
                question = await sync_to_async(fallback.question)(run, ref, error)
                yield question
                if not await ask(question):
                    run.status, run.error_action = Run.Status.FAILED, error.action
                    run.error_message = f"{error.user_message} The run stopped: you chose not to switch."
                    await sync_to_async(_release)(run)
                    yield run
                    return
            await sync_to_async(fallback.record_switch)(run, models[index - 1], ref, error)
            observe.fell_back(models[index - 1], ref)
        try:
            # Off the request's thread, so runs waiting for the budget lock do not queue behind each
            # other's other work; database_sync_to_async closes that thread's connection when due.
            adapter = await database_sync_to_async(_begin, thread_sensitive=False)(
                run, ref, starting=not started
            )
        except budgets.BudgetRefused as refused:
            run.attempts = [*run.attempts, {"model": ref, "skipped": str(refused)}]
            if error is None and index == len(models) - 1:
                run.status, run.error_message, run.refusal = Run.Status.FAILED, str(refused), refused
                await sync_to_async(_release)(run)
                yield run
                return
            continue
        if not started:
            started = True
            yield run  # started
        async for event in _attempt(run, ref, policy, adapter):
            if isinstance(event, ProviderError):
                error = event
            else:
                yield event
                if isinstance(event, Run):
                    return
        run.attempts = [*run.attempts, {"model": ref, "error": error.user_message}]
    if isinstance(error, ModelNotAvailable) and not error.suggestion:
        error.suggestion = await sync_to_async(fallback.suggestion)(run)
    run.status, run.error_message, run.error_action = Run.Status.FAILED, error.user_message, error.action
    run.last_error = error
    if len(models) > 1:
        run.error_message += " Every fallback model failed too."
    await sync_to_async(_release)(run)
    yield run


Ask = Callable[["fallback.Question"], Awaitable[bool]]


async def _attempt(run: Run, ref: str, policy, adapter: ProviderAdapter) -> AsyncIterator:
    """One model with its retries. Yields deltas and countdown ticks, then either the finished Run
    or, when the model gave up before any text, the last ProviderError (for the caller to fall back)."""
    request = GenerationRequest(
        model=ref.partition("/")[2],
        messages=tuple(Message(m["role"], m["content"]) for m in run.messages),
        max_tokens=run.max_tokens,
        temperature=float(run.temperature) if run.temperature is not None else None,
        stream=True,
    )
    # The hard cap is sent as max_tokens; a provider that streams past it (our count, with slack for
    # tokenizer differences) is cut off rather than trusted.
    ceiling = run.max_tokens * OVERRUN_SLACK + 16
    waited = 0.0
    for attempt in range(policy.retry_count + 1):
        parts: list[str] = []
        usage, reached_provider, streamed_tokens = None, False, 0
        try:
            async with aclosing(adapter.stream(request)) as events:
                async for event in events:
                    reached_provider = True
                    if isinstance(event, Delta):
                        run.first_token_at = run.first_token_at or timezone.now()
                        parts.append(event.text)
                        yield event
                        streamed_tokens += tokens.count_text(event.text, request.model, adapter.dialect)
                        if streamed_tokens > ceiling:
                            # Counted piece by piece, a text counts high ("word " is two tokens alone,
                            # one inside a sentence): count it whole before cutting the provider off.
                            streamed_tokens = tokens.count_text(
                                "".join(parts), request.model, adapter.dialect
                            )
                        if streamed_tokens > ceiling:
                            run.error_message = f"Stopped at the cap of {run.max_tokens} output tokens."
                            run.finish_reason = FinishReason.LENGTH
                            break
                    else:
                        usage, run.finish_reason = event.usage, event.finish_reason
            run.status = Run.Status.COMPLETED
        except asyncio.CancelledError:
            run.status, run.error_message = Run.Status.CANCELLED, "Cancelled. The text so far is kept."
            # The request reached the provider: its prompt is billed even if no text came back yet.
            await asyncio.shield(_settle(run, "".join(parts), usage, adapter.dialect, charge_input=True))
            raise
        except ProviderError as error:
            if parts:  # text was shown: keep it, charge it, and let the user decide what next
                run.status, run.error_action, run.last_error = Run.Status.FAILED, "continue", error
                run.error_message = f"{error.user_message} The text so far is kept."
                await _settle(run, "".join(parts), usage, adapter.dialect, charge_input=True)
                yield run
                return
            wait = fallback.backoff(attempt, error, waited, policy) if error.retryable else None
            if wait is None or attempt == policy.retry_count:
                yield error
                return
            observe.retried(ref)
            async for tick in _countdown(wait, error):
                yield tick
            waited += wait
            continue
        await _settle(run, "".join(parts), usage, adapter.dialect, charge_input=reached_provider)
        yield run
        return


async def _countdown(seconds: float, error: ProviderError) -> AsyncIterator[fallback.Waiting]:
    remaining = seconds
    while remaining > 0:
        yield fallback.Waiting(math.ceil(remaining), fallback.waiting_message(error, math.ceil(remaining)))
        step = min(1.0, remaining)
        await asyncio.sleep(step)
        remaining -= step


def _begin(run: Run, ref: str, starting: bool) -> ProviderAdapter:
    """An attempt on `ref` in one trip to the database: its maximum cost reserved (BudgetRefused
    when a budget cannot cover it), the run marked started on its first attempt, and the adapter."""
    previous, run.model_used = run.model_used, ref  # the reservation is for this model
    try:
        _reserve(run, ref)
    except budgets.BudgetRefused:
        run.model_used = previous
        raise
    if starting:
        run.status, run.started_at = Run.Status.STREAMING, timezone.now()
        run.save(update_fields=["status", "started_at", "model_used"])  # the hold is saved by reserve()
    provider_id, _, model = ref.partition("/")
    return registry.get(provider_id, only_model=model)


def _reserve(run: Run, ref: str) -> None:
    """Hold this attempt's maximum cost; a fallback model is priced for the same prompt."""
    if ref != run.model_requested:
        entry, dialect = available_model(run.team, ref)
        messages = [Message(m["role"], m["content"]) for m in run.messages]
        run.max_cost_usd = estimate(
            entry, dialect, messages, min(run.max_tokens, entry.info.max_output)
        ).max_cost
    budgets.reserve(run, ref.partition("/")[0])


def _release(run: Run) -> None:
    run.finished_at = timezone.now()
    _end(run)


def _end(run: Run) -> None:
    """Where every run ends: its hold released, its last state saved, then (once committed) its
    metrics and log line; a failure there is logged and never undoes the settlement."""
    run.reserved_usd = run.reservation_expires_at = None
    run.save()
    transaction.on_commit(partial(observe.run_finished, run), robust=True)


async def _settle(run: Run, text: str, usage, dialect: str, charge_input: bool) -> None:
    if usage is not None:
        input_tokens, output_tokens = usage.input, usage.output
    else:
        # No final count from the provider: our own count of the prompt and of the text it streamed.
        input_tokens = run.estimated_input_tokens if charge_input or text else 0
        output_tokens = tokens.count_text(
            text, (run.model_used or run.model_requested).partition("/")[2], dialect
        )
    run.output, run.input_tokens, run.output_tokens = text, input_tokens, output_tokens
    run.finished_at = timezone.now()
    await sync_to_async(_record)(run)


@transaction.atomic
def _record(run: Run) -> None:
    """The usage row, the run's real cost in place of its reservation, in one transaction."""
    provider_id, _, model = (run.model_used or run.model_requested).partition("/")
    if run.input_tokens or run.output_tokens:
        source = UsageRecord.Source.API if run.api_key_id else UsageRecord.Source.RUN
        usage = record_usage(
            provider_id,
            model,
            TokenCount(run.input_tokens, run.output_tokens),
            source,
            run_id=str(run.uuid),
            team=run.team,
            user=run.user,
            api_key=run.api_key,
            request_id=run.request_id,
        )
        run.cost_usd = usage.cost_usd
    elif (
        row := ProviderModel.objects.filter(pk=run.model_used or run.model_requested).first()
    ) and row.current_price():
        run.cost_usd = Decimal("0")
    _end(run)
