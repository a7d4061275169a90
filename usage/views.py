"""The playground and the run page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.teams import (
    model_choices,
    require_admin,
    require_member,
)
from audit import log
from automations.models import Automation
from providers.base import Message
from providers.team_catalog import for_team
from usage import access, fallback, runs
from usage.forms import FallbackForm, PlaygroundForm
from usage.models import FallbackPolicy


@require_http_methods(["GET", "POST"])
@login_required
def playground(request: HttpRequest) -> HttpResponse:
    team = require_member(request)
    models = for_team(team)  # the picker and the default from one read of the team's models
    form = PlaygroundForm(
        models.choices(with_features=True),
        request.POST or None,
        initial={"model": models.default.ref if models.default else ""},
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
    return render(
        request, "usage/run.html", {"run": run, "can_control": access.can_control(request.user, run)}
    )


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
    form = PlaygroundForm(
        model_choices(team, with_features=True),
        request.POST or None,
        initial={"model": suggested or run.model_requested, "max_tokens": run.max_tokens},
    )
    if request.method == "POST" and form.is_valid():
        prompt = [Message.from_json(m) for m in run.messages]
        if continuing:
            prompt += [
                Message("assistant", run.output),
                Message("user", "Continue exactly where you stopped."),
            ]
        try:
            again = runs.create_run(
                request.user,
                team,
                form.cleaned_data["model"],
                prompt,
                form.cleaned_data["max_tokens"],
                run.temperature,
                automation=run.automation,
                options=run.options,
            )
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
    policy = policy or FallbackPolicy(
        automation=automation,
        enabled=inherited.enabled if inherited else False,
        order=list(inherited.order) if inherited else [],
    )
    title = f"Fallback for “{automation.name}”"
    return _edit_fallback(
        request, team, policy, title, redirect_to=("automations:detail", automation.pk), automation=automation
    )


def _edit_fallback(request, team, policy, title, redirect_to, automation=None) -> HttpResponse:
    groups = model_choices(team)
    names = dict(item for _, group in groups for item in group)
    form = FallbackForm(groups, request.POST or None, initial=_policy_values(policy))
    if request.method == "POST" and form.is_valid():
        before = _policy_values(policy) if policy.pk else {}
        data = form.cleaned_data
        policy.order, policy.retry_count = form.models(), data["retry_count"]
        policy.enabled, policy.ask_before_switching = data["enabled"], data["ask_before_switching"]
        policy.save()
        log.record(
            request.user,
            "fallback_changed",
            automation or team,
            team=team,
            before=before,
            after=_policy_values(policy),
        )
        messages.success(request, "Fallback settings saved.")
        if data["add"] and "save" not in request.POST:
            return redirect(request.path)
        return redirect(*redirect_to)
    # An invalid post keeps what was typed: the order as sent (known models only), the toggles.
    order = [ref for ref in request.POST.getlist("order") if ref in names] if form.is_bound else policy.order
    rows = [(ref, names.get(ref, ref)) for ref in order]
    context = {
        "title": title,
        "policy": policy,
        "form": form,
        "rows": rows,
        "choices": groups,
        "automation": automation,
    }
    return render(request, "usage/fallback.html", context)


def _policy_values(policy: FallbackPolicy) -> dict:
    return {
        "enabled": policy.enabled,
        "order": list(policy.order),
        "retry_count": policy.retry_count,
        "ask_before_switching": policy.ask_before_switching,
    }
