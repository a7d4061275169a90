"""Stored credentials that the configured encryption keys cannot read: pages say "re-enter the key",
runs and the API fail with that message, and nothing answers 500."""

from __future__ import annotations

import pytest
from channels.testing import HttpCommunicator
from cryptography.fernet import Fernet
from django.core.asgi import get_asgi_application

from gateway import keys
from llmhub.checks import StartupGuard
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage.models import FallbackPolicy


@pytest.fixture
def unreadable(alpha, fake_openai, settings):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    settings.LLMHUB_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the key file was replaced


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/providers/settings/", "/providers/openai/edit/", "/"])
def test_provider_pages_say_re_enter_the_key(alice_client, unreadable, url):
    response = alice_client.get(url, follow=True)
    assert response.status_code == 200


@pytest.mark.django_db
def test_the_settings_page_and_the_admin_show_it(alice_client, admin_client, unreadable):
    assert "re-enter the key" in alice_client.get("/providers/settings/").content.decode()
    for url in ("/admin/providers/provider/", "/admin/providers/provider/openai/change/"):
        response = admin_client.get(url)
        assert response.status_code == 200 and "re-enter the key" in response.content.decode()


@pytest.mark.django_db
def test_entering_the_key_again_repairs_it(alice_client, unreadable, fake_openai):
    data = {"api_key": GOOD_KEYS["openai"], "endpoint": fake_openai.url, "action": "save"}
    assert alice_client.post("/providers/openai/edit/", data, HTTP_HX_REQUEST="true")["HX-Redirect"]
    assert registry.get("openai").config.credential("api_key") == GOOD_KEYS["openai"]


@pytest.mark.django_db(transaction=True)
def test_the_api_answers_in_openais_shape(client, alpha, unreadable, fake_openai):
    FallbackPolicy.objects.create(team=alpha, enabled=False, retry_count=0)
    secret = keys.create(alpha, "ci").secret
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    response = client.post(
        "/v1/chat/completions", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert response.status_code == 502
    assert "re-enter the key" in response.json()["error"]["message"]
    assert fake_openai.requests == []


@pytest.mark.django_db(transaction=True)
async def test_a_server_started_without_the_key_refuses_to_serve(unreadable):
    guard = StartupGuard(get_asgi_application())
    response = await HttpCommunicator(guard, "GET", "/accounts/login/").get_response(timeout=10)
    assert response["status"] == 503
    assert b"LLMHUB_ENCRYPTION_KEYS" in response["body"] and b"encryption.key" in response["body"]
