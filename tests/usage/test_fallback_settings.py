from __future__ import annotations

import pytest

from audit.models import AuditEntry
from automations.models import Automation
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage.models import FallbackPolicy

pytestmark = pytest.mark.django_db


@pytest.fixture
def providers(alpha):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, team=alpha)
    registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]}, team=alpha)


def test_an_admin_sets_the_order_retries_and_ask_mode_and_it_is_audited(alice_client, alpha, providers):
    response = alice_client.post(
        "/fallback/",
        {
            "enabled": "on",
            "order": ["anthropic/claude-sonnet-4-5", "openai/gpt-4o-mini"],
            "retry_count": "2",
            "ask_before_switching": "on",
            "save": "1",
        },
    )
    assert response.status_code == 302
    policy = FallbackPolicy.objects.get(team=alpha)
    assert policy.order == ["anthropic/claude-sonnet-4-5", "openai/gpt-4o-mini"]
    assert (policy.enabled, policy.retry_count, policy.ask_before_switching) == (True, 2, True)
    entry = AuditEntry.objects.get(action="fallback_changed")
    assert entry.after["order"] == policy.order


def test_adding_a_model_keeps_the_page_open_and_refuses_unknown_models(alice_client, alpha, providers):
    response = alice_client.post(
        "/fallback/", {"add": "anthropic/claude-haiku-4-5", "add-button": "1", "retry_count": "3"}
    )
    assert response.url == "/fallback/"
    assert FallbackPolicy.objects.get(team=alpha).order == ["anthropic/claude-haiku-4-5"]
    html = alice_client.post(
        "/fallback/", {"order": ["openai/gpt-99"], "retry_count": "3", "save": "1"}
    ).content.decode()
    assert "openai/gpt-99 is not one of your team&#x27;s models." in html


def test_an_automation_overrides_the_team_and_can_go_back(alice_client, alpha, providers):
    automation = Automation.objects.create(team=alpha, name="Digest", prompt_template="{text}")
    FallbackPolicy.objects.create(team=alpha, order=["openai/gpt-4o-mini"])
    page = alice_client.get(f"/automations/{automation.pk}/fallback/").content.decode()
    assert "openai/gpt-4o-mini" in page and "Use the team's settings instead" in page
    alice_client.post(
        f"/automations/{automation.pk}/fallback/",
        {"enabled": "on", "order": ["anthropic/claude-opus-4-5"], "retry_count": "1", "save": "1"},
    )
    assert FallbackPolicy.objects.get(automation=automation).order == ["anthropic/claude-opus-4-5"]
    alice_client.post(f"/automations/{automation.pk}/fallback/", {"inherit": "1"})
    assert not FallbackPolicy.objects.filter(automation=automation).exists()


def test_members_cannot_change_fallback(bob_client, providers):
    assert bob_client.get("/fallback/").status_code == 403
