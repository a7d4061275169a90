"""Budget banners and alert e-mails reach the people a budget concerns, and nobody else (issue 13:
a team's budget on its own provider once alerted every team's admins and e-mailed all staff)."""

from __future__ import annotations

import importlib
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Membership, Team, User
from providers.base import TokenCount
from providers.registry import registry
from tests.conftest import GOOD_KEYS, PASSWORD
from usage import budgets
from usage.models import Budget, BudgetAlertDismissal
from usage.records import record_usage

pytestmark = pytest.mark.django_db
BANNER = 'class="flash alert"'


@pytest.fixture
def openai(alpha):
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, team=alpha)


@pytest.fixture
def shared(db):
    """A provider every team may use, managed by instance staff."""
    return registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]})


@pytest.fixture
def staff(db):
    """A site admin working in a team of their own."""
    user = User.objects.create_user("root", "root@example.com", PASSWORD, is_staff=True)
    Membership.objects.create(user=user, team=Team.objects.create(name="Operations"), role="admin")
    client = Client()
    client.force_login(user)
    return client


def spend_alpha(alpha, provider="openai", model="gpt-4o", tokens=TokenCount(10_000, 5_000)):
    record_usage(provider, model, tokens, "run", team=alpha)  # gpt-4o: $0.075


def test_a_teams_budget_on_its_own_provider_carries_the_team(alice_client, alpha, openai, shared, staff):
    alice_client.post("/providers/openai/budget/", {"monthly_limit_usd": "5", "alert_percent": "80"})
    assert Budget.objects.get(provider=openai).team == alpha
    alice_client.post("/providers/anthropic/budget/", {"monthly_limit_usd": "3", "alert_percent": "80"})
    assert Budget.objects.get(provider=shared).team == alpha  # Alpha's own limit on a shared provider
    User.objects.filter(username="root").update(current_team=alpha)
    staff.post("/providers/anthropic/budget/", {"monthly_limit_usd": "100", "alert_percent": "80"})
    assert Budget.objects.filter(provider=shared, team=None).exists()  # staff: instance-wide


def test_banners_reach_only_the_teams_admins(alice_client, bob_client, charlie_client, alpha, openai, staff):
    Budget.objects.create(team=alpha, provider=openai, monthly_limit_usd=Decimal("0.01"))
    spend_alpha(alpha)
    assert "The Alpha on OpenAI budget is at 750 %" in alice_client.get("/").content.decode()
    assert BANNER not in bob_client.get("/").content.decode()  # a member
    assert BANNER not in charlie_client.get("/").content.decode()  # another team's admin
    assert BANNER not in staff.get("/").content.decode()  # staff working in another team


def test_instance_wide_budgets_alert_staff_only(alice_client, alpha, shared, staff):
    Budget.objects.create(provider=shared, monthly_limit_usd=Decimal("0.01"))
    spend_alpha(alpha, "anthropic", "claude-sonnet-4-5")
    assert "The Anthropic budget is at" in staff.get("/").content.decode()
    assert BANNER not in alice_client.get("/").content.decode()


def test_alert_emails_reach_only_the_teams_admins(
    alpha, alice, bob, charlie, openai, staff, django_capture_on_commit_callbacks
):
    for person in (alice, bob, charlie):
        person.email = f"{person.username}@example.com"
        person.save()
    Budget.objects.create(team=alpha, provider=openai, monthly_limit_usd=Decimal("0.01"))
    with django_capture_on_commit_callbacks(execute=True):
        spend_alpha(alpha)
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]


def test_instance_wide_alert_emails_reach_staff_only(
    alpha, alice, shared, staff, django_capture_on_commit_callbacks
):
    Budget.objects.create(provider=shared, monthly_limit_usd=Decimal("0.01"))
    with django_capture_on_commit_callbacks(execute=True):
        spend_alpha(alpha, "anthropic", "claude-sonnet-4-5")
    assert [m.to for m in mail.outbox] == [["root@example.com"]]


def test_the_banner_follows_the_current_limit_and_spend(alice_client, alpha, openai):
    budget = Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("0.01"))
    spend_alpha(alpha)
    assert "The Alpha team budget is at 750 %: $0.075 of $0.01" in alice_client.get("/").content.decode()
    budget.monthly_limit_usd = Decimal("1")
    budget.save()
    assert BANNER not in alice_client.get("/").content.decode()  # no frozen figures
    budget.monthly_limit_usd = Decimal("0.08")
    budget.save()
    assert "is at 94 %: $0.075 of $0.08 spent this month" in alice_client.get("/").content.decode()
    budget.monthly_limit_usd = None
    budget.save()
    assert BANNER not in alice_client.get("/").content.decode()


def test_a_banner_closes_for_its_period_only(alice_client, alpha, openai):
    team_budget = Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("0.01"))
    Budget.objects.create(team=alpha, provider=openai, daily_limit_usd=Decimal("0.01"))
    spend_alpha(alpha)
    page = alice_client.get("/").content.decode()
    assert page.count(BANNER) == 2
    alice_client.post("/budgets/dismiss/", {"budget": team_budget.pk, "period": "month", "next": "/"})
    page = alice_client.get("/").content.decode()
    assert page.count(BANNER) == 1 and "Alpha on OpenAI budget" in page
    # Closed last month is not closed this month.
    start, _ = budgets.period("month")
    BudgetAlertDismissal.objects.update(period_start=start - timedelta(days=1))
    assert alice_client.get("/").content.decode().count(BANNER) == 2


def test_dismissing_with_htmx_removes_the_banner_in_place(alice_client, alpha, openai):
    budget = Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("0.01"))
    spend_alpha(alpha)
    response = alice_client.post(
        "/budgets/dismiss/", {"budget": budget.pk, "period": "month"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and response.content == b""


def test_nobody_closes_another_teams_banner_or_goes_elsewhere(charlie_client, alpha, openai):
    budget = Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("0.01"))
    response = charlie_client.post(
        "/budgets/dismiss/", {"budget": budget.pk, "period": "month", "next": "https://evil.example/"}
    )
    assert response.url == "/"  # never an open redirect
    assert not BudgetAlertDismissal.objects.exists()


def test_banners_cost_the_same_queries_whatever_other_teams_hold(alice_client, alpha, openai):
    Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("0.01"))
    spend_alpha(alpha)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            alice_client.get("/")
        return len(captured)

    before = queries()
    for n in range(10):
        other = Team.objects.create(name=f"Other {n}")
        Budget.objects.create(team=other, monthly_limit_usd=Decimal("0.01"))
        record_usage("openai", "gpt-4o", TokenCount(10_000, 5_000), "run", team=other)
    assert queries() == before


def test_existing_budgets_on_a_teams_provider_get_its_team(alpha, openai, shared):
    on_own = Budget.objects.create(provider=openai, monthly_limit_usd=Decimal("5"))
    instance_wide = Budget.objects.create(provider=shared, monthly_limit_usd=Decimal("5"))
    migration = importlib.import_module("usage.migrations.0011_requests_log_and_budget_scopes")
    migration.scope_team_provider_budgets(apps, None)
    on_own.refresh_from_db()
    instance_wide.refresh_from_db()
    assert on_own.team == alpha and instance_wide.team is None


class TestLimits:
    def test_a_negative_limit_is_refused(self, alice_client, alpha):
        html = alice_client.post(
            "/budget/", {"monthly_limit_usd": "-5", "alert_percent": "80"}
        ).content.decode()
        assert "A limit cannot be negative" in html
        assert not Budget.objects.exists()

    def test_a_sub_cent_limit_is_kept_exactly(self, alice_client, alpha):
        alice_client.post(
            "/budget/", {"daily_limit_usd": "0.005", "monthly_limit_usd": "0.125", "alert_percent": "80"}
        )
        budget = Budget.objects.get()
        assert (budget.daily_limit_usd, budget.monthly_limit_usd) == (Decimal("0.005"), Decimal("0.125"))
        page = alice_client.get("/budget/").content.decode()
        assert 'value="0.005"' in page and 'value="0.125"' in page  # as typed, not 0.005000

    def test_the_sliders_step_finely_for_small_budgets_and_coarsely_for_large(self, alice_client, alpha):
        Budget.objects.create(team=alpha, daily_limit_usd=Decimal("0.02"), monthly_limit_usd=Decimal("5000"))
        page = alice_client.get("/budget/").content.decode()
        assert 'data-steps="0,0.001,0.002,0.005,0.01,0.02,0.05,0.1,' in page
        assert 'max="25" step="1" value="5"' in page  # 0.02 is the sixth step
        assert 'max="25" step="1" value="21"' in page  # 5000
