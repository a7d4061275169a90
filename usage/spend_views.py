"""The spend page and its CSV: one filter form for the charts, the totals, the runs and the export."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.teams import teams_of
from audit.spreadsheet import streamed
from gateway.models import ApiKey
from providers.team_catalog import for_team
from usage import budgets, spend, spool
from usage.access import visible_runs
from usage.forms import DateRangeForm, SpendFiltersForm
from usage.models import Budget

RUNS_PER_PAGE = 25


def _filters(request: HttpRequest) -> tuple[spend.Filters, SpendFiltersForm, list, list[dict]]:
    """The filters, their form, the teams chosen and the range's grouped spend rows."""
    teams = list(teams_of(request.user))
    if not teams:
        raise PermissionDenied
    chosen = [t for t in teams if str(t.pk) == request.GET.get("team", "")] or teams
    team_ids = [t.pk for t in chosen]
    start, end = DateRangeForm(request.GET).range(spend.this_month())
    keys = list(ApiKey.objects.filter(team_id__in=team_ids))
    key = next((k.pk for k in keys if str(k.pk) == request.GET.get("key", "")), None)
    rows = spend.grouped(spend.Filters(team_ids, start, end, api_key=key))
    # The models offered: those used in the range (whatever else is filtered: no dropdown shrinks
    # to its own value), and every model the team has, used or not.
    pairs = [(row["provider_id"], row["model"]) for row in rows]
    if len(chosen) == 1:
        pairs += [tuple(e.ref.split("/", 1)) for e in for_team(chosen[0], enabled_only=False).entries]
    form = SpendFiltersForm(request.GET, teams=teams, pairs=pairs, keys=keys)
    form.is_valid()
    filters = spend.Filters(
        team_ids, start, end, form.value("provider", ""), form.value("model", ""), key, form.value("kind", "")
    )
    return filters, form, chosen, rows


def _exact(amount) -> str:
    """A Decimal as its shortest exact string: "0.0105", not "0.010500000000"."""
    return f"{amount.normalize():f}" if amount else "0"


@require_GET
@login_required
def spend_page(request: HttpRequest) -> HttpResponse:
    filters, form, teams, rows = _filters(request)
    spent, projected = spend.projection(filters)
    breakdown = spend.breakdown(filters, rows)
    charts = {
        "providers": [[name, _exact(cost)] for name, cost in breakdown.by_provider],
        "models": [[name, _exact(cost)] for name, cost in breakdown.by_model],
        "daily": [[day.isoformat(), _exact(cost)] for day, cost in breakdown.daily],
        "projected": _exact(projected),
        "today": timezone.localdate().isoformat(),
    }
    runs = spend.runs(filters, [visible_runs(request.user, team) for team in teams])
    page = Paginator(runs, RUNS_PER_PAGE).get_page(form.value("page", 1))
    team_budgets = Budget.objects.select_related("team", "provider", "api_key").filter(
        team_id__in=filters.team_ids
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "charts": charts,
        "spent": spent,
        "projected": projected,
        "totals": breakdown,
        "page": page,
        "standings": [s for b in team_budgets for s in budgets.standings(b)],
        "query": query.urlencode(),
        "filters": filters,
        "spooled": spool.pending(filters.team_ids),
    }
    return render(request, "usage/spend.html", context)


@require_GET
@login_required
def spend_csv(request: HttpRequest) -> StreamingHttpResponse:
    """Every usage row of the filters, streamed in index order."""
    filters, _, _, _ = _filters(request)
    rows = filters.usage_rows().select_related("team", "user", "api_key").order_by("team_id", "created_at")
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
        "kind",
    ]
    lines = (
        [
            row.created_at.isoformat(),
            row.team.name if row.team else "",
            row.user.get_username() if row.user else "",
            row.provider_id,
            row.model,
            row.run_id,
            row.input_tokens,
            row.output_tokens,
            "" if row.cost_usd is None else row.cost_usd,
            row.source,
            row.api_key.name if row.api_key else "",
            row.kind,
        ]
        for row in rows.iterator(chunk_size=2000)
    )
    return streamed(header, lines, f"llmhub-usage-{filters.start}-{filters.end}.csv")
