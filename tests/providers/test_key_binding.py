"""A saved key is only sent to the endpoint, key header and headers it was saved with."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from providers.credentials import KEY_AGAIN, CredentialsMissing
from providers.errors import KeyUnusable
from providers.models import CustomKind, Provider
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
KEY = GOOD_KEYS["openai"]


@pytest.fixture
def evil():
    """A server the team admin controls, which would log any key sent to it."""
    server = FakeOpenAI(api_keys=set()).start()
    yield server
    server.stop()


@pytest.fixture
def openai(alpha, fake_openai):
    return registry.save("openai", {"api_key": KEY}, endpoint=fake_openai.url, team=alpha)


def sent_key(server) -> bool:
    return any(KEY in str(request.headers) for request in server.requests)


@pytest.mark.parametrize("action", ["test", "save", "save_anyway"])
def test_a_team_admin_cannot_send_the_saved_key_to_another_endpoint(alice_client, openai, evil, action):
    data = {"api_key": "", "endpoint": evil.url, "action": action}
    html = alice_client.post("/providers/openai/edit/", data, **HTMX).content.decode()
    assert "Enter the key again: a saved key is only sent to the endpoint it was saved for." in html
    assert evil.requests == []
    assert Provider.objects.get().endpoint == openai.endpoint


def test_the_registry_refuses_it_too(alpha, openai, evil):
    with pytest.raises(CredentialsMissing, match=KEY_AGAIN):
        registry.save("openai", {}, provider_id="openai", endpoint=evil.url, team=alpha)
    assert Provider.objects.get().endpoint == openai.endpoint


def test_typing_the_key_again_moves_it(alice_client, openai, evil):
    evil.api_keys.add(KEY)
    data = {"api_key": KEY, "endpoint": evil.url, "action": "save"}
    assert alice_client.post("/providers/openai/edit/", data, **HTMX)["HX-Redirect"] == "/providers/settings/"
    provider = Provider.objects.get()
    assert provider.endpoint == evil.url
    assert registry.config_for(provider).credential("api_key") == KEY


def test_an_endpoint_changed_behind_the_forms_back_gets_no_key(openai, evil):
    """Changed in the database or the Django admin: the key stays bound to where it was saved."""
    Provider.objects.filter(pk="openai").update(endpoint=evil.url)
    with pytest.raises(KeyUnusable, match="re-enter the key"):
        registry.get("openai")
    assert evil.requests == []


def test_a_changed_key_header_or_extra_header_needs_the_key_again(alpha, fake_openai):
    definition = {"id": "vllm", "name": "Office vLLM", "dialect": "openai", "endpoint": fake_openai.url}
    kind = CustomKind.objects.create(id="vllm", team=alpha, definition=definition)
    registry.save("vllm", {"api_key": KEY}, team=alpha)
    assert registry.config_for(Provider.objects.get()).credential("api_key") == KEY
    kind.definition = definition | {"auth_header": "x-logged-header"}
    kind.save()
    with pytest.raises(KeyUnusable):
        registry.config_for(Provider.objects.get())
    kind.definition = definition | {"headers": {"x-mirror-to": "evil.example"}}
    kind.save()
    with pytest.raises(KeyUnusable):
        registry.config_for(Provider.objects.get())


def test_test_connection_is_audited_without_the_key(alice_client, alpha, openai, fake_openai):
    data = {"api_key": "", "endpoint": fake_openai.url, "action": "test"}
    assert "✓ Connected" in alice_client.post("/providers/openai/edit/", data, **HTMX).content.decode()
    entry = AuditEntry.objects.get(action="connection_tested")
    assert (entry.actor_name, entry.team, entry.object_id) == ("alice", alpha, "openai")
    assert entry.after == {"kind": "openai", "endpoint": fake_openai.url, "outcome": "connected"}
    alice_client.post(
        "/providers/connect/openai/",
        {"api_key": "sk-wrong-key-0000000000000000", "action": "test", "endpoint": fake_openai.url},
        **HTMX,
    )
    failed = AuditEntry.objects.filter(action="connection_tested").first()
    assert "invalid" in failed.after["outcome"] and "sk-wrong" not in str(failed.after)


def test_an_endpoint_changed_in_the_django_admin_is_audited_and_gets_no_key(admin_client, openai, evil):
    data = {
        "id": "openai",
        "display_name": "OpenAI",
        "enabled": "on",
        "endpoint": evil.url,
        "default_model": "",
        "models-TOTAL_FORMS": "0",
        "models-INITIAL_FORMS": "0",
        "models-MIN_NUM_FORMS": "0",
        "models-MAX_NUM_FORMS": "1000",
    }
    response = admin_client.post("/admin/providers/provider/openai/change/", data)
    assert response.status_code == 302, response.content.decode()[:1500]
    entry = AuditEntry.objects.get(action="provider_updated")
    assert entry.after["endpoint"] == evil.url and entry.before["endpoint"] == openai.endpoint
    with pytest.raises(KeyUnusable):
        registry.get("openai")
    assert evil.requests == []
