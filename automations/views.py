"""Automations: list, create, edit, delete, run, and switch model with the cost difference shown."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Avg, Max, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.teams import default_model_for, model_choices, providers_for, require_admin, require_member
from audit import log
from automations.forms import AutomationForm, AutomationSearchForm, RunForm
from automations.models import Automation
from providers.base import Message
from providers.pricing import format_usd
from providers.registry import registry
from providers.team_catalog import for_team
from usage import access, runs
from usage.models import Run

AUTOMATIONS_PER_PAGE = 20


def _get_automation(request: HttpRequest, automation_id: int, admin: bool = False) -> Automation:
    team = require_admin(request) if admin else require_member(request)
    return get_object_or_404(Automation, pk=automation_id, team=team)


def model_of(automation: Automation) -> str:
    """The model the next run uses: the automation's own, else the team default."""
    if automation.model:
        return automation.model
    default = default_model_for(automation.team)
    return default.ref if default else ""


@require_GET
@login_required
def automation_list(request: HttpRequest) -> HttpResponse:
    """Searchable and paged, each with its model, last run and average cost of a completed run."""
    team = require_member(request)
    form = AutomationSearchForm(request.GET)
    form.is_valid()
    automations = Automation.objects.filter(team=team).annotate(
        last_run_at=Max("runs__created_at"),
        cost_per_run=Avg("runs__cost_usd", filter=Q(runs__status=Run.Status.COMPLETED)),
    )
    words = form.cleaned_data.get("q", "")
    if words:
        automations = automations.filter(Q(name__icontains=words) | Q(prompt_template__icontains=words))
    page = Paginator(automations.order_by("name"), AUTOMATIONS_PER_PAGE).get_page(
        form.cleaned_data.get("page")
    )
    default = default_model_for(team)
    context = {
        "page": page,
        "team": team,
        "form": form,
        "default_model": default.ref if default else "",
        "query": urlencode({"q": words}) if words else "",
    }
    return render(request, "automations/list.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def automation_edit(request: HttpRequest, automation_id: int | None = None) -> HttpResponse:
    team = require_admin(request)
    automation = (
        _get_automation(request, automation_id, admin=True) if automation_id else Automation(team=team)
    )
    form = AutomationForm(model_choices(team, with_features=True), request.POST or None, instance=automation)
    if request.method == "POST" and form.is_valid():
        creating = automation.pk is None
        automation = form.save(commit=False)
        automation.created_by = automation.created_by or request.user
        automation.save()
        log.record(
            request.user,
            "automation_created" if creating else "automation_updated",
            automation,
            after={"name": automation.name, "model": automation.model},
        )
        return redirect("automations:detail", automation_id=automation.pk)
    return render(request, "automations/edit.html", {"form": form, "automation": automation})


@require_http_methods(["GET", "POST"])
@login_required
def automation_delete(request: HttpRequest, automation_id: int) -> HttpResponse:
    automation = _get_automation(request, automation_id, admin=True)
    if request.method == "POST":
        log.record(request.user, "automation_deleted", automation, before={"name": automation.name})
        automation.delete()
        messages.success(request, f"Automation “{automation.name}” deleted.")
        return redirect("automations:list")
    return render(request, "automations/delete.html", {"automation": automation})


@require_http_methods(["GET", "POST"])
@login_required
def automation_detail(request: HttpRequest, automation_id: int) -> HttpResponse:
    """The automation, its model, its run history, and the form that starts a run."""
    automation = _get_automation(request, automation_id)
    form = RunForm(automation.input_names(), request.POST or None)
    ref = model_of(automation)
    if request.method == "POST" and form.is_valid():
        try:
            run = runs.create_run(
                request.user,
                automation.team,
                ref,
                automation.messages(form.cleaned_data),
                automation.max_tokens,
                automation.temperature,
                automation=automation,
            )
        except runs.RunRefused as refused:
            form.add_error(None, str(refused))
        else:
            return redirect("usage:run", run_id=run.uuid)
    context = {
        "automation": automation,
        "form": form,
        "model": registry.model_info(ref) if ref else None,
        "runs": access.visible_runs(request.user, automation.team).filter(automation=automation)[:20],
        "is_admin": request.user.is_team_admin(automation.team),
    }
    return render(request, "automations/detail.html", context)


@require_GET
@login_required
def change_model(request: HttpRequest, automation_id: int) -> HttpResponse:
    """The model picker: every model of the team, with this automation's cost per run and the difference."""
    automation = _get_automation(request, automation_id, admin=True)
    current = model_of(automation)
    options = _priced_options(automation)
    current_cost = next((o["cost"] for o in options if o["entry"].ref == current), None)
    for option in options:
        option["difference"] = _difference(option["cost"], current_cost)
    groups: dict[str, list[dict]] = {}
    for option in options:
        groups.setdefault(option["entry"].provider_name, []).append(option)
    chosen = request.GET.get("model", "")
    choice = next((o for o in options if o["entry"].ref == chosen), None)
    return render(
        request,
        "automations/change_model.html",
        {"automation": automation, "groups": groups, "current": current, "choice": choice},
    )


@require_POST
@login_required
def switch_model(request: HttpRequest, automation_id: int) -> HttpResponse:
    automation = _get_automation(request, automation_id, admin=True)
    ref = request.POST.get("model", "")
    if ref not in {entry for _, group in model_choices(automation.team) for entry, _ in group}:
        messages.error(request, "Pick one of your team's models.")
        return redirect("automations:change-model", automation_id=automation.pk)
    before = model_of(automation)
    automation.model = ref
    automation.save(update_fields=["model", "updated_at"])
    log.record(request.user, "model_changed", automation, before={"model": before}, after={"model": ref})
    messages.success(request, f"The next run of “{automation.name}” uses {ref}.")
    return redirect("automations:detail", automation_id=automation.pk)


def _priced_options(automation: Automation) -> list[dict]:
    sample = _sample_messages(automation)
    dialects = dict(providers_for(automation.team).values_list("id", "dialect"))
    options = []
    for entry in for_team(automation.team).entries:
        if entry.provider_id in dialects:
            priced = runs.estimate(
                entry, dialects[entry.provider_id], sample, min(automation.max_tokens, entry.info.max_output)
            )
            options.append({"entry": entry, "cost": priced.expected_cost, "max_cost": priced.max_cost})
    return options


def _sample_messages(automation: Automation) -> tuple[Message, ...]:
    """The last run's prompt, or the template itself: what a typical run sends."""
    last = automation.runs.first()
    if last is not None:
        return tuple(Message.from_json(m) for m in last.messages)
    return automation.messages({name: "{" + name + "}" for name in automation.input_names()})


def _difference(cost: Decimal | None, current: Decimal | None) -> str:
    if cost is None or current is None:
        return "price unknown"
    delta = cost - current
    if abs(delta) < Decimal("0.000001"):
        return "same price"
    # Two significant digits are enough to compare: "~$0.0024 more per run".
    rounded = abs(delta).quantize(Decimal(1).scaleb(abs(delta).adjusted() - 1))
    return f"~{format_usd(rounded)} {'more' if delta > 0 else 'less'} per run"
