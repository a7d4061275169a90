"""Fallback: which models a run may try, how long it waits between retries, and what it tells the
user when it switches."""

from __future__ import annotations

import random
from dataclasses import dataclass

from django.conf import settings

from accounts.teams import providers_for
from audit import log
from providers import breaker, configuration
from providers.base import TaskType
from providers.errors import ProviderError, RateLimited
from providers.pricing import format_usd
from providers.registry import registry
from usage.models import FallbackPolicy, Run

NO_FALLBACK = FallbackPolicy(enabled=False, order=[], retry_count=2, ask_before_switching=False)


@dataclass(frozen=True)
class Waiting:
    """A retry countdown tick, sent to the page every second while a run waits."""

    seconds: int
    message: str


@dataclass(frozen=True)
class Question:
    """Ask mode: may the run switch to another model?"""

    text: str
    to: str


def policy_for(run: Run) -> FallbackPolicy:
    """The automation's own policy, else the team's, else retries only (from the process's snapshot
    of the configuration while it is current: read it, never change it)."""
    return configuration.cached(("policy", run.automation_id, run.team_id), lambda: _policy(run))


def _policy(run: Run) -> FallbackPolicy:
    if run.automation_id:
        own = FallbackPolicy.objects.filter(automation_id=run.automation_id).first()
        if own:
            return own
    return FallbackPolicy.objects.filter(team_id=run.team_id).first() or NO_FALLBACK


def plan(run: Run) -> tuple[FallbackPolicy, list[str]]:
    """The run's policy and the models it will try, in order: without those whose provider the
    circuit breaker skips (noted in the run's attempts). CircuitOpen when that leaves none."""
    policy = policy_for(run)
    refs = candidates(run, policy)
    skip = breaker.skipped(list(dict.fromkeys(ref.partition("/")[0] for ref in refs)))
    if not skip:
        return policy, refs
    usable = []
    for ref in refs:
        provider_id = ref.partition("/")[0]
        if provider_id in skip:
            run.attempts = [*run.attempts, {"model": ref, "skipped": skip[provider_id].user_message}]
        else:
            usable.append(ref)
    if not usable:
        raise skip[refs[0].partition("/")[0]]
    return policy, usable


def candidates(run: Run, policy: FallbackPolicy) -> list[str]:
    """The requested model, then each fallback the team may use that is enabled, in order."""
    refs = [run.model_requested]
    if policy.enabled:
        usable = set(providers_for(run.team).filter(enabled=True).values_list("id", flat=True))
        refs += [ref for ref in policy.order if ref not in refs and ref.partition("/")[0] in usable]
    return refs


def backoff(attempt: int, error: ProviderError, waited: float, policy: FallbackPolicy) -> float | None:
    """Seconds to wait before retry number `attempt` + 1, or None when the total wait would pass
    the policy's cap. A provider's retry-after is honoured; otherwise exponential with jitter."""
    base = settings.LLMHUB_RETRY_BASE_SECONDS
    wait = base * 2**attempt + random.uniform(0, base)  # noqa: S311 - jitter, not security
    if isinstance(error, RateLimited) and error.retry_after is not None:
        wait = max(error.retry_after, 0.0)
    return wait if waited + wait <= policy.max_total_wait_seconds else None


def waiting_message(error: ProviderError, seconds: int, ref: str, attempt: int, attempts: int) -> str:
    """ "OpenAI rate limit hit. Retrying openai/gpt-4o-mini in 3 s (attempt 2 of 4)." """
    reason = f"{error.provider} rate limit hit." if isinstance(error, RateLimited) else error.user_message
    return f"{reason} Retrying {ref} in {seconds} s (attempt {attempt} of {attempts})."


def question(run: Run, to: str, reason: str) -> Question:
    """ "OpenAI is failing: rate limited. Switch to Claude Sonnet 4.5 (~$0.002 more)?\"" `reason` is
    what went wrong last: a provider's error, or a budget's refusal."""
    current, target = registry.model_info(run.model_used or run.model_requested), registry.model_info(to)
    name = target.info.display_name if target else to
    difference = ""
    if current and target and run.max_cost_usd is not None and current.info.priced and target.info.priced:
        ratio_in = target.info.input_per_1m - current.info.input_per_1m
        ratio_out = target.info.output_per_1m - current.info.output_per_1m
        delta = (ratio_in * run.estimated_input_tokens + ratio_out * run.max_tokens) / 1_000_000
        difference = f" (up to ~{format_usd(abs(delta))} {'more' if delta >= 0 else 'less'})"
    provider = current.provider_name if current else run.model_requested
    return Question(f"{provider} is failing: {reason} Switch to {name}{difference}?", to)


def record_switch(run: Run, source: str, target: str, reason: str) -> None:
    """Audit a switch to the next model; `reason` is why the last one was left (an error or a refusal)."""
    actor = run.user or (f"API key {run.api_key.name}" if run.api_key_id else "command line")
    log.record(
        actor,
        "fallback_triggered",
        run,
        team=run.team,
        before={"model": source},
        after={"model": target, "reason": reason},
    )


def suggestion(run: Run) -> str:
    """For a model that is not available: the cheapest other priced model of the same provider."""
    provider_id, _, model = (run.model_used or run.model_requested).partition("/")
    others = [
        e
        for e in registry.list_models(provider_id)
        if e.info.id != model and e.info.priced and TaskType.EMBEDDINGS not in e.info.capabilities
    ]
    cheapest = min(others, key=lambda e: e.info.input_per_1m + e.info.output_per_1m, default=None)
    return cheapest.info.display_name if cheapest else ""
