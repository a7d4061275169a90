"""The playground and the run page."""

from __future__ import annotations

import csv
from datetime import date

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from accounts.teams import (
    can_manage,
    default_model_for,
    model_choices,
    providers_for,
    require_admin,
    require_member,
    teams_of,
)
from audit import log
from automations.models import Automation
from gateway.models import ApiKey
from providers.base import Message
from usage import budgets, fallback, runs, spend
from usage.budget_forms import BudgetForm
from usage.forms import PlaygroundForm
from usage.models import Budget, FallbackPolicy, Run, UsageRecord


@require_http_methods(["GET", "POST"])
@login_required
def playground(request: HttpRequest) -> HttpResponse:
    team = require_member(request)
    default = default_model_for(team)
    form = PlaygroundForm(
        model_choices(team), request.POST or None, initial={"model": default.ref if default else ""}
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        prompt = [Message("user", data["message"])]
        if data["system_prompt"]:
            prompt.insert(0, Message("system", data["system_prompt"]))
        try:
            run = runs.create_run(
                request.user,
                team,
                data["model"],
                prompt,
                data["max_tokens"],
                data["temperature"],
                request_id=request.request_id,
            )
        except runs.RunRefused as refused:
            form.add_error("model", str(refused))
        else:
            return redirect("usage:run", run_id=run.uuid)
    return render(request, "usage/playground.html", {"form": form})


@require_GET
@login_required
def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    run = runs.get_for_user(request.user, run_id)
    if run is None:
        raise Http404("No such run in your team.")
    return render(request, "usage/run.html", {"run": run})


# ---- budgets


@require_http_methods(["GET", "POST"])
@login_required
def team_budget(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    budget = Budget.objects.filter(team=team, provider__isnull=True, api_key=None).first() or Budget(
        team=team
    )
    return _edit_budget(request, budget, f"{team.name} team budget", "usage:team-budget", [])


@require_http_methods(["GET", "POST"])
@login_required
def provider_budget(request: HttpRequest, provider_id: str) -> HttpResponse:
    """A provider's budget for the team that manages it; a team's own budget on a shared provider."""
    team = require_admin(request)
    provider = get_object_or_404(providers_for(team), pk=provider_id)
    scope = (
        {"provider": provider, "team": None}
        if can_manage(request.user, provider)
        else {"provider": provider, "team": team}
    )
    budget = Budget.objects.filter(**scope, api_key=None).first() or Budget(**scope)
    title = (
        f"{provider.display_name} budget"
        if scope["team"] is None
        else f"{team.name} on {provider.display_name} budget"
    )
    return _edit_budget(request, budget, title, "usage:provider-budget", [provider.pk])


def _edit_budget(request: HttpRequest, budget: Budget, title: str, url: str, args: list) -> HttpResponse:
    before = BudgetForm(instance=budget).values() if budget.pk else {}
    form = BudgetForm(request.POST or None, instance=budget)
    if request.method == "POST" and form.is_valid():
        budget = form.save()
        log.record(
            request.user, "budget_changed", budget, team=budget.team, before=before, after=form.values()
        )
        messages.success(request, f"{title} saved.")
        return redirect(url, *args)
    standing = budgets.standings(budget) if budget.pk else []
    return render(
        request, "usage/budget.html", {"form": form, "title": title, "budget": budget, "standings": standing}
    )


# ---- spend


def _filters(request: HttpRequest) -> tuple[spend.Filters, dict]:
    teams = list(teams_of(request.user))
    if not teams:
        raise PermissionDenied
    chosen = request.GET.get("team", "")
    team_ids = [t.pk for t in teams if str(t.pk) == chosen] or [t.pk for t in teams]
    start, end = spend.this_month()
    try:
        start = date.fromisoformat(request.GET["from"]) if request.GET.get("from") else start
        end = date.fromisoformat(request.GET["to"]) if request.GET.get("to") else end
    except ValueError:
        messages.error(request, "Dates are written as YYYY-MM-DD; showing this month.")
    if end < start or (end - start).days > 366:
        messages.error(request, "Pick a range of at most a year, ending after it starts; showing this month.")
        start, end = spend.this_month()
    keys = list(ApiKey.objects.filter(team_id__in=team_ids))
    key = next((k.pk for k in keys if str(k.pk) == request.GET.get("key", "")), None)
    filters = spend.Filters(
        team_ids, start, end, request.GET.get("provider", ""), request.GET.get("model", ""), key
    )
    return filters, {"teams": teams, "team": chosen, "from": start, "to": end, "keys": keys,
                     "key": str(key or ""), "provider": filters.provider, "model": filters.model}  # fmt: skip


@require_GET
@login_required
def spend_page(request: HttpRequest) -> HttpResponse:
    filters, choices = _filters(request)
    spent, projected = spend.projection(filters)
    breakdown = spend.breakdown(filters)
    charts = {
        "providers": [[name, _exact(cost)] for name, cost in breakdown.by_provider],
        "models": [[name, _exact(cost)] for name, cost in breakdown.by_model],
        "daily": [[day.isoformat(), _exact(cost)] for day, cost in breakdown.daily],
        "projected": _exact(projected),
        "today": timezone.localdate().isoformat(),
    }
    recent = Run.objects.filter(team_id__in=filters.team_ids).select_related("user", "automation", "api_key")
    if filters.provider:
        recent = recent.filter(model_requested__startswith=f"{filters.provider}/")
    if filters.api_key:
        recent = recent.filter(api_key_id=filters.api_key)
    team_budgets = Budget.objects.select_related("team", "provider", "api_key").filter(
        team_id__in=filters.team_ids
    )
    context = {"charts": charts, "choices": choices, "spent": spent, "projected": projected,
               "totals": breakdown, "runs": recent[:25],
               "standings": [s for b in team_budgets for s in budgets.standings(b)],
               "providers": sorted(name for name, _ in breakdown.by_provider),
               "query": request.GET.urlencode()}  # fmt: skip
    return render(request, "usage/spend.html", context)


@require_GET
@login_required
def spend_csv(request: HttpRequest) -> StreamingHttpResponse:
    """Every usage row of the filters, streamed: no page holds the whole table in memory."""
    filters, _ = _filters(request)
    start, end = filters.moments()
    rows = UsageRecord.objects.filter(team_id__in=filters.team_ids, created_at__gte=start, created_at__lt=end)
    rows = rows.select_related("team", "user", "api_key")
    if filters.provider:
        rows = rows.filter(provider_id=filters.provider)
    if filters.model:
        rows = rows.filter(model=filters.model)
    if filters.api_key:
        rows = rows.filter(api_key_id=filters.api_key)
    writer = csv.writer(_Echo())
    header = [
        "time",
        "team",
        "user",
        "provider",
        "model",
        "run",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "source",
        "api_key",
    ]

    def lines():
        yield writer.writerow(header)
        for row in rows.order_by("team_id", "created_at").iterator(chunk_size=2000):
            yield writer.writerow([row.created_at.isoformat(), row.team.name if row.team else "",
                                   row.user.get_username() if row.user else "", row.provider_id, row.model, row.run_id,
                                   row.input_tokens, row.output_tokens, "" if row.cost_usd is None else row.cost_usd,
                                   row.source, row.api_key.name if row.api_key else ""])  # fmt: skip

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="llmhub-usage-{filters.start}-{filters.end}.csv"'
    return response


def _exact(amount) -> str:
    """A Decimal as its shortest exact string: "0.0105", not "0.010500000000"."""
    return f"{amount.normalize():f}" if amount else "0"


class _Echo:
    def write(self, value: str) -> str:
        return value


@require_http_methods(["GET", "POST"])
@login_required
def retry(request: HttpRequest, run_id: str) -> HttpResponse:
    """Run a failed run again, on the same or another model; after a cut stream, continue its text."""
    run = runs.get_for_user(request.user, run_id)
    if run is None:
        raise Http404("No such run in your team.")
    team = run.team
    continuing = bool(run.output) and run.error_action == "continue"
    suggested = next(
        (ref for ref in fallback.candidates(run, fallback.policy_for(run)) if ref != run.model_used), ""
    )
    form = PlaygroundForm(model_choices(team), request.POST or None,
                          initial={"model": suggested or run.model_requested, "max_tokens": run.max_tokens})  # fmt: skip
    if request.method == "POST" and form.is_valid():
        prompt = [Message(m["role"], m["content"]) for m in run.messages]
        if continuing:
            prompt += [
                Message("assistant", run.output),
                Message("user", "Continue exactly where you stopped."),
            ]
        try:
            again = runs.create_run(request.user, team, form.cleaned_data["model"], prompt,
                                    form.cleaned_data["max_tokens"], run.temperature, automation=run.automation)  # fmt: skip
        except runs.RunRefused as refused:
            form.add_error("model", str(refused))
        else:
            return redirect("usage:run", run_id=again.uuid)
    return render(request, "usage/retry.html", {"run": run, "form": form, "continuing": continuing})


# ---- fallback settings


@require_http_methods(["GET", "POST"])
@login_required
def team_fallback(request: HttpRequest) -> HttpResponse:
    team = require_admin(request)
    policy = FallbackPolicy.objects.filter(team=team).first() or FallbackPolicy(team=team, enabled=False)
    return _edit_fallback(
        request, team, policy, f"Fallback for {team.name}", redirect_to=("usage:team-fallback",)
    )


@require_http_methods(["GET", "POST"])
@login_required
def automation_fallback(request: HttpRequest, automation_id: int) -> HttpResponse:
    team = require_admin(request)
    automation = get_object_or_404(Automation, pk=automation_id, team=team)
    policy = FallbackPolicy.objects.filter(automation=automation).first()
    if request.method == "POST" and request.POST.get("inherit"):
        if policy:
            log.record(
                request.user,
                "fallback_changed",
                automation,
                before=_policy_values(policy),
                after={"inherit": True},
            )
            policy.delete()
        messages.success(request, f"“{automation.name}” follows the team's fallback settings.")
        return redirect("automations:detail", automation_id=automation.pk)
    inherited = FallbackPolicy.objects.filter(team=team).first()
    policy = policy or FallbackPolicy(automation=automation, enabled=inherited.enabled if inherited else False,
                                      order=list(inherited.order) if inherited else [])  # fmt: skip
    return _edit_fallback(request, team, policy, f"Fallback for “{automation.name}”",
                          redirect_to=("automations:detail", automation.pk), automation=automation)  # fmt: skip


def _edit_fallback(request, team, policy, title, redirect_to, automation=None) -> HttpResponse:
    choices = dict(item for _, group in model_choices(team) for item in group)
    errors = []
    if request.method == "POST":
        before = _policy_values(policy) if policy.pk else {}
        order = [ref for ref in request.POST.getlist("order") if ref]
        if request.POST.get("add"):
            order.append(request.POST["add"])
        unknown = [ref for ref in order if ref not in choices]
        try:
            retries = int(request.POST.get("retry_count", "3"))
        except ValueError:
            retries = -1
        if unknown:
            errors.append(f"{unknown[0]} is not one of your team's models.")
        if not 0 <= retries <= 10:
            errors.append("Retries: a whole number from 0 to 10.")
        policy.order = list(dict.fromkeys(order))
        policy.enabled = bool(request.POST.get("enabled"))
        policy.ask_before_switching = bool(request.POST.get("ask_before_switching"))
        if not errors:
            policy.retry_count = retries
            policy.save()
            log.record(request.user, "fallback_changed", automation or team, team=team, before=before,
                       after=_policy_values(policy))  # fmt: skip
            messages.success(request, "Fallback settings saved.")
            if request.POST.get("add") and "save" not in request.POST:
                return redirect(request.path)
            return redirect(*redirect_to)
    rows = [(ref, choices.get(ref, ref)) for ref in policy.order]
    return render(request, "usage/fallback.html", {"title": title, "policy": policy, "rows": rows, "errors": errors,
                                                   "choices": model_choices(team), "automation": automation})  # fmt: skip


def _policy_values(policy: FallbackPolicy) -> dict:
    return {"enabled": policy.enabled, "order": list(policy.order), "retry_count": policy.retry_count,
            "ask_before_switching": policy.ask_before_switching}  # fmt: skip
