"""Runs: the requests log (who, which model, status, tokens, cost, latency) and one run's record."""

from __future__ import annotations

from datetime import timedelta
from functools import reduce
from operator import or_

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.models import Team, User
from accounts.teams import require_member
from gateway.models import ApiKey
from providers.team_catalog import for_team
from usage import spend
from usage.access import visible_runs
from usage.forms import DateRangeForm, RunFiltersForm
from usage.models import Run
from usage.run_log import Query

RUNS_PER_PAGE = 50
OPTIONS_LOOKBACK = timedelta(days=31)


@require_GET
@login_required
def run_log(request: HttpRequest) -> HttpResponse:
    current = require_member(request)
    staff = request.user.is_staff
    teams = list(Team.objects.order_by("name")) if staff else [current]
    chosen = next((t for t in teams if str(t.pk) == request.GET.get("team", "")), None)
    scope = [chosen] if chosen else ([] if staff else [current])
    # Models offered: the team's own, and those used in the chosen dates (else the last month).
    today = timezone.localdate()
    used_from, used_to = DateRangeForm(request.GET).range((today - OPTIONS_LOOKBACK, today))
    if scope:
        runs = reduce(or_, [visible_runs(request.user, team) for team in scope])
        people = list(User.objects.filter(memberships__team__in=scope).distinct().order_by("username"))
        keys = list(ApiKey.objects.filter(team__in=scope))
        pairs = spend.used_models([t.pk for t in scope], used_from, used_to)
        pairs += [tuple(e.ref.split("/", 1)) for e in for_team(scope[0], enabled_only=False).entries]
    else:  # instance staff, every team
        runs = Run.objects.all()
        people = list(User.objects.order_by("username"))
        keys = list(ApiKey.objects.all())
        pairs = spend.used_models([t.pk for t in teams], used_from, used_to)
    form = RunFiltersForm(request.GET, teams=teams if staff else None, people=people, pairs=pairs, keys=keys)
    form.is_valid()
    start, end = form.bounds()
    query = Query(
        person=int(form.value("person") or 0) or None,
        api_key=int(form.value("key") or 0) or None,
        provider=form.value("provider", ""),
        model=form.value("model", ""),
        status=form.value("status", ""),
        start=start,
        end=end,
    )
    page = Paginator(query.apply(runs), RUNS_PER_PAGE).get_page(form.value("page", 1))
    params = request.GET.copy()
    params.pop("page", None)
    context = {"form": form, "page": page, "query": params.urlencode(), "many_teams": staff and not chosen}
    return render(request, "usage/run_log.html", context)


@require_GET
@login_required
def run_record(request: HttpRequest, run_id: str) -> HttpResponse:
    """One run as the log keeps it: prompt, output, each attempt and fallback, the error, timings."""
    run = Run.objects.select_related("team", "user", "api_key", "automation").filter(uuid=run_id).first()
    if run is None or not request.user.is_team_member(run.team):
        raise Http404("No such run in your team.")
    if not visible_runs(request.user, run.team).filter(pk=run.pk).exists():
        raise Http404("No such run in your team.")
    return render(request, "usage/run_record.html", {"run": run})
