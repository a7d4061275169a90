"""The playground and the run page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.teams import default_model_for, model_choices, require_member
from providers.base import Message
from usage import runs
from usage.forms import PlaygroundForm


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
        messages = [Message("user", data["message"])]
        if data["system_prompt"]:
            messages.insert(0, Message("system", data["system_prompt"]))
        try:
            run = runs.create_run(
                request.user, team, data["model"], messages, data["max_tokens"], data["temperature"]
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
