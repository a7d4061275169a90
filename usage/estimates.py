"""A run's price before it starts: its input counted, its output expected and at its ceiling, and
the pending run that carries that estimate until the user (or the program) starts it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from accounts.models import Team, User
from llmhub import instances, statements
from providers.base import GenerationRequest, Message
from providers.catalog_entries import CatalogEntry
from providers.errors import UnsupportedRequest
from providers.pricing import cost, worst_input_price
from providers.registry import registry
from usage import budgets, tokens
from usage.models import Run

# Without history, a run is expected to use this share of its max output tokens.
EXPECTED_OUTPUT_SHARE = Decimal("0.25")


class RunRefused(Exception):
    """A run that cannot start; the message says why and what to do."""


class UnsupportedFields(RunRefused):
    """The request asks for what the model cannot do: `refused` names each field."""

    def __init__(self, model_ref: str, refused: list[str]) -> None:
        self.refused = refused
        super().__init__(UnsupportedRequest("", model_ref, refused).user_message)


@dataclass(frozen=True)
class Estimate:
    input_tokens: int
    exact: bool  # counted with the model's own tokenizer
    expected_output_tokens: int
    max_output_tokens: int
    expected_cost: Decimal | None  # None: the model is unpriced
    max_cost: Decimal | None


def estimate(
    entry: CatalogEntry,
    dialect: str,
    messages: Sequence[Message],
    max_tokens: int,
    expected_output: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> Estimate:
    """The price of a run before it starts: input counted (tools and images included), output
    expected and at its ceiling, for each of the `n` choices the options ask for."""
    options = options or {}
    counted = tokens.count_messages(messages, entry.info.id, dialect, options)
    choices = int(options.get("n", 1))
    share = expected_output if expected_output is not None else int(max_tokens * EXPECTED_OUTPUT_SHARE)
    expected = min(max_tokens, share) * choices
    info = entry.info
    if not info.priced:
        return Estimate(counted.tokens, counted.exact, expected, max_tokens * choices, None, None)
    return Estimate(
        input_tokens=counted.tokens,
        exact=counted.exact,
        expected_output_tokens=expected,
        max_output_tokens=max_tokens * choices,
        expected_cost=cost(info.input_per_1m, info.output_per_1m, counted.tokens, expected),
        max_cost=cost(worst_input_price(info), info.output_per_1m, counted.tokens, max_tokens * choices),
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
    return registry.run_entry(row), provider.dialect


def create_run(*args: Any, **kwargs: Any) -> Run:
    """A pending run with its price estimate (price_run's, saved)."""
    run = price_run(*args, **kwargs)
    statements.insert(run)
    return run


def price_run(
    user: User | None,
    team: Team,
    model_ref: str,
    messages: Sequence[Message],
    max_tokens: int,
    temperature: Decimal | None = None,
    automation=None,
    api_key=None,
    available: tuple[CatalogEntry, str] | None = None,
    options: Mapping[str, Any] | None = None,
    request_id: str = "",
) -> Run:
    """A pending run with its price estimate, not saved yet; it starts only when the user (or the
    program that sent it, with an API key) confirms. `available` is what available_model() already answered
    for this team and model, when the caller asked it first. `options` are the request's other
    options (GenerationRequest.options_json()), stored untouched; UnsupportedFields names those
    the model cannot honour. `request_id` is the x-request-id of the request that asked for it."""
    entry, dialect = available or available_model(team, model_ref)
    options = dict(options or {})
    request = GenerationRequest.from_stored(
        entry.info.id,
        [m.to_json() for m in messages],
        options,
        temperature=float(temperature) if temperature is not None else None,
    )
    refused = registry.adapter_class(dialect).refusals(request, entry.info)
    if refused:
        raise UnsupportedFields(model_ref, refused)
    caps = budgets.caps_for(team, entry.provider_id, api_key.pk if api_key else None)
    max_tokens = max(1, min(max_tokens, entry.info.max_output, caps.hard or max_tokens))
    warning = ""
    if caps.soft is not None and max_tokens > caps.soft:
        warning = (
            f"This run may write up to {max_tokens:,} tokens, over the soft cap of {caps.soft:,} "
            f"set by the {caps.soft_from} budget."
        )
    priced = estimate(entry, dialect, messages, max_tokens, _typical_output(automation), options)
    return instances.new(
        Run,
        warning=warning,
        team=team,
        user=user,
        automation=automation,
        api_key=api_key,
        request_id=request_id,
        model_requested=model_ref,
        messages=[m.to_json() for m in messages],
        max_tokens=max_tokens,
        temperature=temperature,
        options=options,
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
