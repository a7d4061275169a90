"""The budget pages and the spend page, through Django's test client."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from audit.models import AuditEntry
from providers.base import TokenCount
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage.models import Budget
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
    response = alice_client.post("/providers/openai/budget/", {"daily_limit_usd": "5", "monthly_limit_usd": "50",
                                 "hard_cap_on": "on", "per_run_hard_cap_tokens": "4000", "alert_percent": "75"})  # fmt: skip
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
    html = alice_client.post("/budget/", {"daily_limit_usd": "90", "monthly_limit_usd": "50", "soft_cap_on": "on",
                                          "alert_percent": "80"}).content.decode()  # fmt: skip
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
