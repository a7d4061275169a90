"""Budgets: which apply to a run, and the per-run token caps they set."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from accounts.models import Team
from usage.models import Budget


@dataclass(frozen=True)
class Caps:
    soft: int | None  # above this, the run page warns before the run starts
    hard: int | None  # the most output tokens a run may ask for, and may stream
    soft_from: Budget | None = None
    hard_from: Budget | None = None


def matching(team: Team, provider_id: str) -> QuerySet[Budget]:
    """Every budget whose scope covers a run of this team on this provider."""
    return Budget.objects.select_related("team", "provider").filter(
        (Q(team=team) | Q(team__isnull=True)) & (Q(provider_id=provider_id) | Q(provider__isnull=True))
    )


def caps_for(team: Team, provider_id: str) -> Caps:
    """The tightest per-run caps among the matching budgets."""
    budgets = list(matching(team, provider_id))
    soft = min(
        (b for b in budgets if b.per_run_soft_cap_tokens),
        key=lambda b: b.per_run_soft_cap_tokens,
        default=None,
    )
    hard = min(
        (b for b in budgets if b.per_run_hard_cap_tokens),
        key=lambda b: b.per_run_hard_cap_tokens,
        default=None,
    )
    return Caps(
        soft=soft.per_run_soft_cap_tokens if soft else None,
        hard=hard.per_run_hard_cap_tokens if hard else None,
        soft_from=soft,
        hard_from=hard,
    )
