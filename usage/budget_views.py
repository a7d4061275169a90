"""Settings → Budgets: every budget of the team with what it has left, each one's form, and the
banner a person closes for the rest of its period."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.teams import current_team, providers_for, require_admin
from audit import log
from gateway import ratelimits
from gateway.forms import RateLimitsForm
from gateway.models import ApiKey
from usage import alerts, budgets
from usage.budget_forms import BudgetForm
from usage.forms import DismissAlertForm
from usage.models import Budget


@require_GET
@login_required
def budget_list(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    providers = list(providers_for(team).order_by("display_name"))
    keys = list(ApiKey.objects.filter(team=team, revoked_at=None))
    rows = Budget.objects.select_related("team", "provider", "api_key").filter(
        Q(team=team) | Q(team__isnull=True, provider__in=providers)
    )
    by_scope = {(b.provider_id, b.api_key_id, b.team_id): b for b in rows}
    entries = [
        _entry(
            "Team", f"All of {team.name}'s runs", by_scope.get((None, None, team.pk)), "usage:team-budget", []
        )
    ]
    for provider in providers:
        owner = provider.team_id or (None if request.user.is_staff else team.pk)
        budget = by_scope.get((provider.pk, None, owner))
        scope = "every team" if owner is None else team.name
        entries.append(
            _entry(
                "Provider",
                f"{provider.display_name} ({scope})",
                budget,
                "usage:provider-budget",
                [provider.pk],
            )
        )
    for key in keys:
        entries.append(
            _entry(
                "API key",
                f"{key.name} ({key.masked})",
                by_scope.get((None, key.pk, team.pk)),
                "usage:key-budget",
                [key.pk],
            )
        )
    return render(request, "usage/budgets.html", {"team": team, "entries": entries})


def _entry(kind: str, name: str, budget: Budget | None, url: str, args: list) -> dict:
    limited = budget is not None and (
        budget.daily_limit_usd is not None or budget.monthly_limit_usd is not None
    )
    standings = {s.period: s for s in budgets.standings(budget)} if limited else {}
    return {
        "kind": kind,
        "name": name,
        "budget": budget,
        "day": standings.get("day"),
        "month": standings.get("month"),
        "href": reverse(url, args=args),
    }


@require_http_methods(["GET", "POST"])
@login_required
def team_budget(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    budget = Budget.objects.filter(team=team, provider__isnull=True, api_key=None).first() or Budget(
        team=team
    )
    current = {"requests_per_minute": team.requests_per_minute, "tokens_per_minute": team.tokens_per_minute}
    limits = RateLimitsForm(request.POST or None, prefix="limits", initial=current)
    return _edit_budget(request, budget, f"{team.name} team budget", "usage:team-budget", [], limits)


@require_http_methods(["GET", "POST"])
@login_required
def provider_budget(request: HttpRequest, provider_id: str) -> HttpResponse:
    """A team's own provider: its budget carries the team, so only that team's admins hear of it.
    A shared provider: staff set the instance-wide budget; a team admin, the team's own limit on it."""
    team = require_admin(request)
    provider = get_object_or_404(providers_for(team).select_related("team"), pk=provider_id)
    if provider.team_id is not None:
        owner, title = provider.team, f"{provider.display_name} budget"
    elif request.user.is_staff:
        owner, title = None, f"{provider.display_name} budget (every team)"
    else:
        owner, title = team, f"{team.name} on {provider.display_name} budget"
    scope = {"provider": provider, "team": owner}
    budget = Budget.objects.filter(**scope, api_key=None).first() or Budget(**scope)
    return _edit_budget(request, budget, title, "usage:provider-budget", [provider.pk])


@require_http_methods(["GET", "POST"])
@login_required
def key_budget(request: HttpRequest, key_id: int) -> HttpResponse:
    team = require_admin(request)
    key = get_object_or_404(ApiKey, pk=key_id, team=team)
    budget = Budget.objects.filter(api_key=key).first() or Budget(team=team, api_key=key)
    return _edit_budget(request, budget, f"API key {key.name} budget", "usage:key-budget", [key.pk])


def _edit_budget(
    request: HttpRequest,
    budget: Budget,
    title: str,
    url: str,
    args: list,
    limits: RateLimitsForm | None = None,
) -> HttpResponse:
    """A budget's form (and, for the team's, its rate limits): saved together or not at all."""
    before = BudgetForm(instance=budget).values() if budget.pk else {}
    form = BudgetForm(request.POST or None, instance=budget)
    valid = all([form.is_valid(), limits is None or limits.is_valid()])  # every form shows its errors
    if request.method == "POST" and valid:
        with transaction.atomic():
            budget = form.save()
            log.record(
                request.user, "budget_changed", budget, team=budget.team, before=before, after=form.values()
            )
            if limits is not None:
                data = limits.cleaned_data
                ratelimits.change(
                    budget.team, data["requests_per_minute"], data["tokens_per_minute"], request.user
                )
        messages.success(request, f"{title} saved.")
        return redirect(url, *args)
    standing = budgets.standings(budget) if budget.pk else []
    context = {"form": form, "title": title, "budget": budget, "standings": standing, "limits": limits}
    return render(request, "usage/budget.html", context)


@require_POST
@login_required
def dismiss_alert(request: HttpRequest) -> HttpResponse:
    """Close a budget banner until its day or month ends."""
    form = DismissAlertForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        alerts.dismiss(request.user, current_team(request), data["budget"], data["period"])
    if request.htmx:
        return HttpResponse("")  # the banner is swapped for nothing
    target = form.cleaned_data.get("next", "") if form.is_valid() else ""
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = "/"
    return redirect(target)
