"""Every page of the set-up and settings screens, for each role; and no page ever shows a saved key."""

from __future__ import annotations

import pytest

from providers.registry import registry
from tests.conftest import GOOD_KEYS

pytestmark = pytest.mark.django_db

ADMIN_PAGES = [
    ("get", "/providers/connect/"),
    ("get", "/providers/connect/openai/"),
    ("get", "/providers/openai/models/"),
    ("get", "/providers/settings/"),
    ("get", "/providers/openai/edit/"),
    ("get", "/providers/openai/delete/"),
    ("get", "/audit/"),
]
ADMIN_ACTIONS = [
    ("post", "/providers/openai/toggle/"),
    ("post", "/providers/settings/default-model/"),
    ("post", "/providers/openai/models/"),
    ("post", "/providers/openai/delete/"),
]


@pytest.fixture
def openai(alpha):
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, team=alpha)


@pytest.mark.parametrize(("method", "url"), ADMIN_PAGES + ADMIN_ACTIONS + [("get", "/")])
def test_anonymous_visitors_are_sent_to_sign_in(client, openai, alice, method, url):
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response.url.startswith("/accounts/login/?next=")


@pytest.mark.parametrize(("method", "url"), ADMIN_PAGES + ADMIN_ACTIONS)
def test_a_member_who_types_an_admin_url_gets_403(bob_client, openai, method, url):
    assert getattr(bob_client, method)(url).status_code == 403


@pytest.mark.parametrize(
    ("method", "url"), [p for p in ADMIN_PAGES if p[1].startswith("/providers/openai/")] + ADMIN_ACTIONS[:1]
)
def test_another_teams_admin_cannot_touch_alices_provider(charlie_client, openai, method, url):
    assert getattr(charlie_client, method)(url).status_code == 403


@pytest.mark.parametrize(("method", "url"), ADMIN_PAGES)
def test_a_team_admin_sees_every_page(alice_client, openai, method, url):
    assert alice_client.get(url).status_code == 200


def test_a_member_sees_the_home_page_with_the_teams_model(bob_client, openai):
    html = bob_client.get("/").content.decode()
    assert "OpenAI GPT-4o" in html
    assert 'href="/providers/settings/"' not in html


def test_the_audit_log_shows_only_the_teams_entries(alice_client, charlie_client, openai):
    alice_client.post("/providers/openai/toggle/")
    assert "provider_disabled" in alice_client.get("/audit/").content.decode()
    assert "provider_disabled" not in charlie_client.get("/audit/").content.decode()


def test_no_page_shows_a_saved_key(alice_client, openai):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"], "organization_id": "org-9"})
    alice_client.post("/providers/openai/toggle/")
    for _, url in [*ADMIN_PAGES, ("get", "/")]:
        html = alice_client.get(url).content.decode()
        assert GOOD_KEYS["openai"] not in html, url
        assert GOOD_KEYS["openai"][3:-4] not in html, url
