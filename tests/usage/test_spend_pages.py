"""The budget pages and the spend page, through Django's test client."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.models import AuditEntry
from providers.base import TokenCount
from providers.pricing import format_usd
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage import spend
from usage.models import Budget, DailySpend, Run
from usage.records import record_usage

pytestmark = pytest.mark.django_db


@pytest.fixture
def usage(alpha, alice, charlie):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, team=alpha)
    registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]}, team=alpha)
    record_usage("openai", "gpt-4o", TokenCount(1000, 500), "run", team=alpha, user=alice)  # $0.0075
    record_usage(
        "anthropic", "claude-sonnet-4-5", TokenCount(1000, 500), "run", team=alpha, user=alice
    )  # $0.0105
    record_usage(
        "openai-2", "gpt-4o", TokenCount(100000, 0), "run", team=charlie.memberships.get().team
    )  # not Alpha's


def test_an_admin_sets_a_provider_budget_and_it_is_audited(alice_client, usage):
    page = alice_client.get("/providers/openai/budget/").content.decode()
    assert "OpenAI budget" in page and 'type="range"' in page
    response = alice_client.post(
        "/providers/openai/budget/",
        {
            "daily_limit_usd": "5",
            "monthly_limit_usd": "50",
            "hard_cap_on": "on",
            "per_run_hard_cap_tokens": "4000",
            "alert_percent": "75",
        },
    )
    assert response.status_code == 302
    budget = Budget.objects.get()
    # Alpha's own provider: the budget carries the team, so only Alpha's admins hear of it.
    assert (budget.provider_id, budget.team.name, budget.monthly_limit_usd) == (
        "openai",
        "Alpha",
        Decimal("50"),
    )
    assert budget.per_run_soft_cap_tokens is None and budget.per_run_hard_cap_tokens == 4000
    assert budget.alert_threshold == Decimal("0.75")
    entry = AuditEntry.objects.get(action="budget_changed")
    assert entry.after["monthly_limit_usd"] == "50" and entry.before == {}
    page = alice_client.get("/providers/openai/budget/").content.decode()
    assert "This month: <strong>$0.0075</strong> spent" in page


def test_a_budget_form_explains_what_does_not_add_up(alice_client, usage):
    html = alice_client.post(
        "/budget/",
        {"daily_limit_usd": "90", "monthly_limit_usd": "50", "soft_cap_on": "on", "alert_percent": "80"},
    ).content.decode()
    assert "A day cannot allow more than the whole month." in html
    assert "Give the number of tokens, or switch the cap off." in html
    assert not Budget.objects.exists()


def test_members_cannot_change_budgets(bob_client, usage):
    assert bob_client.get("/budget/").status_code == 403
    assert bob_client.post("/providers/openai/budget/", {"monthly_limit_usd": "1"}).status_code == 403


def test_the_spend_page_shows_the_teams_figures_from_usage_rows(bob_client, usage):
    html = bob_client.get("/spend/").content.decode()
    assert "You're on track for" in html
    assert "$0.018 in the range shown" in html and ", 2 runs," in html
    assert '"providers": [["anthropic", "0.0105"], ["openai", "0.0075"]]' in html
    assert '<canvas id="chart-daily"' in html and "vendor/chart.umd.min" in html


def test_the_spend_page_filters_by_provider(bob_client, usage):
    html = bob_client.get("/spend/?provider=openai").content.decode()
    assert "$0.0075 in the range shown" in html and ", 1 run," in html


def test_a_bad_date_range_is_explained(bob_client, usage):
    html = bob_client.get("/spend/?from=2026-13-01").content.decode()
    assert "Dates are written as YYYY-MM-DD" in html


def test_the_csv_export_streams_the_teams_usage_rows(bob_client, usage):
    response = bob_client.get("/spend/usage.csv")
    assert response.streaming and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(r["provider"] for r in rows) == ["anthropic", "openai"]
    assert {r["cost_usd"] for r in rows} == {"0.007500000000", "0.010500000000"}


# ---- one filter set for charts, totals, runs and CSV


def started_run(team, user, requested: str, used: str, cost: str | None = "0.01", **fields) -> Run:
    now = timezone.now()
    return Run.objects.create(
        team=team,
        user=user,
        model_requested=requested,
        model_used=used,
        messages=[],
        max_tokens=100,
        status=fields.pop("status", "completed"),
        started_at=now,
        finished_at=now,
        input_tokens=10,
        output_tokens=10,
        cost_usd=None if cost is None else Decimal(cost),
        **fields,
    )


def listed_runs(html: str) -> int:
    table = html.split('id="spend-runs"')[1].split("</table>")[0]
    return table.count("/record/")


def test_the_model_filter_applies_to_totals_runs_and_csv_on_the_model_used(alice_client, alpha, alice, usage):
    # Asked for gpt-4o, answered by Claude after a fallback: it counts under Claude everywhere.
    started_run(alpha, alice, "openai/gpt-4o", "anthropic/claude-sonnet-4-5")
    html = alice_client.get("/spend/?model=anthropic/claude-sonnet-4-5").content.decode()
    assert "$0.011 in the range shown" in html and ", 1 run," in html
    assert listed_runs(html) == 1
    html = alice_client.get("/spend/?model=openai/gpt-4o").content.decode()
    assert "$0.0075 in the range shown" in html and listed_runs(html) == 0
    response = alice_client.get("/spend/usage.csv?model=openai/gpt-4o")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["provider"], r["model"]) for r in rows] == [("openai", "gpt-4o")]


def test_the_dropdowns_keep_every_option_whatever_is_chosen(alice_client, usage):
    html = alice_client.get("/spend/?provider=openai").content.decode()
    assert '<option value="anthropic">anthropic</option>' in html
    assert '<option value="openai" selected>openai</option>' in html
    assert '<option value="anthropic/claude-sonnet-4-5">claude-sonnet-4-5</option>' in html


def test_a_run_that_never_started_is_not_listed(alice_client, alpha, alice, usage):
    Run.objects.create(team=alpha, user=alice, model_requested="openai/gpt-4o", messages=[], max_tokens=100)
    started_run(alpha, alice, "openai/gpt-4o", "openai/gpt-4o")
    assert listed_runs(alice_client.get("/spend/").content.decode()) == 1


def test_the_runs_under_the_charts_are_paged(alice_client, alpha, alice, usage):
    for _ in range(30):
        started_run(alpha, alice, "openai/gpt-4o", "openai/gpt-4o")
    first = alice_client.get("/spend/?provider=openai").content.decode()
    assert listed_runs(first) == 25 and "Page 1 of 2" in first and "provider=openai&amp;page=2" in first
    assert listed_runs(alice_client.get("/spend/?provider=openai&page=2").content.decode()) == 5


def test_members_see_only_their_own_runs_under_the_charts(bob_client, alpha, alice, bob, usage):
    started_run(alpha, alice, "openai/gpt-4o", "openai/gpt-4o")
    mine = started_run(alpha, bob, "openai/gpt-4o", "openai/gpt-4o")
    html = bob_client.get("/spend/").content.decode()
    assert listed_runs(html) == 1 and str(mine.uuid) in html


def test_the_projection_is_never_below_what_is_spent(alpha, usage):
    last_day = date(2026, 11, 30)
    DailySpend.objects.create(
        day=last_day, team=alpha, provider_id="openai", model="gpt-4o", cost_usd=Decimal("0.0017")
    )
    filters = spend.Filters([alpha.pk], date(2026, 11, 1), last_day)
    spent, projected = spend.projection(filters, today=last_day)
    assert spent == projected == Decimal("0.0017")  # was "on track for $0.00" with $0.0017 spent
    assert format_usd(projected) == "$0.0017"


def test_a_run_that_cost_nothing_says_so(alice_client, alpha, alice, usage):
    refused = Run.objects.create(
        team=alpha,
        user=alice,
        model_requested="openai/gpt-4o",
        messages=[],
        max_tokens=100,
        status="failed",
        error_message="Monthly budget: $0.00 left",
    )
    free = started_run(alpha, alice, "openai/gpt-4o", "openai/gpt-4o", cost="0")
    assert "not charged" in alice_client.get(f"/runs/{refused.uuid}/").content.decode()
    assert "unpriced" not in alice_client.get(f"/runs/{refused.uuid}/").content.decode()
    assert "not charged" in alice_client.get(f"/runs/{free.uuid}/record/").content.decode()


def test_the_charts_carry_the_currency(alice_client, usage):
    html = alice_client.get("/spend/").content.decode()
    assert 'aria-label="Cost by provider, in US dollars"' in html and "js/money." in html
