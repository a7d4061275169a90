"""Connecting a provider, choosing a model, and Settings → Providers, through Django's test client."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from accounts.models import Membership, Team, User
from audit.models import AuditEntry
from providers.models import Provider
from providers.registry import registry
from tests.conftest import BAD_KEY, GOOD_KEYS

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def connect(client, fake, key, action="test", kind="openai", **extra):
    data = {"api_key": key, "endpoint": fake.url, "action": action, **extra}
    return client.post(f"/providers/connect/{kind}/", data, **HTMX)


class TestFirstRun:
    def test_a_fresh_install_leads_every_page_to_creating_the_first_admin(self, client):
        assert client.get("/").url == "/setup/"
        assert client.get("/providers/settings/").url == "/setup/"
        assert "Create the first admin account" in client.get("/setup/").content.decode()

    def test_it_creates_the_first_admin_and_their_team_and_signs_them_in(self, client):
        response = client.post(
            "/setup/",
            {
                "username": "ada",
                "email": "ada@example.com",
                "team": "Research",
                "password1": "a-long-passphrase-9",
                "password2": "a-long-passphrase-9",
            },
        )
        assert response.url == "/providers/connect/"
        ada = User.objects.get(username="ada")
        assert ada.is_staff and ada.is_superuser
        assert ada.memberships.get().role == Membership.Role.ADMIN
        assert ada.memberships.get().team.name == "Research"
        assert "Connect your LLM provider" in client.get("/providers/connect/").content.decode()

    def test_it_keeps_what_was_typed_when_the_passwords_differ(self, client):
        response = client.post(
            "/setup/",
            {
                "username": "ada",
                "team": "Research",
                "password1": "a-long-passphrase-9",
                "password2": "another-one-9",
            },
        )
        html = response.content.decode()
        assert "The two passwords differ." in html and 'value="ada"' in html and 'value="Research"' in html
        assert not User.objects.exists()

    def test_the_first_admin_page_closes_once_someone_exists(self, client, alice):
        assert client.get("/setup/").url == "/"

    def test_createsuperuser_keeps_working(self, monkeypatch):
        monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-passphrase-9")
        call_command("createsuperuser", "--noinput", "--username", "root", "--email", "root@example.com")
        assert User.objects.get(username="root").is_superuser


class TestConnecting:
    def test_an_admin_without_providers_lands_on_connect(self, alice_client):
        assert alice_client.get("/").url == "/providers/connect/"

    def test_the_cards_come_from_the_registry(self, alice_client):
        html = alice_client.get("/providers/connect/").content.decode()
        for kind in registry.kinds():
            assert f'id="kind-{kind.id}"' in html and f"Connect {kind.name}" in html

    def test_the_form_is_generated_from_the_credential_fields(self, alice_client):
        html = alice_client.get("/providers/connect/openai/").content.decode()
        assert 'type="password" name="api_key"' in html
        assert 'name="organization_id"' in html and "(optional)" in html
        assert "https://platform.openai.com/api-keys" in html and "Where to find your key" in html
        assert 'data-toggle-secret="id_api_key"' in html

    def test_test_connection_shows_a_tick_and_saves_nothing(self, alice_client, fake_openai):
        html = connect(alice_client, fake_openai, GOOD_KEYS["openai"]).content.decode()
        assert "✓ Connected: OpenAI accepted the key." in html
        assert not Provider.objects.exists()

    def test_test_connection_shows_the_exact_error_for_a_wrong_key(self, alice_client, fake_openai):
        html = connect(alice_client, fake_openai, BAD_KEY).content.decode()
        assert "Your OpenAI API key is invalid. Please check and try again." in html
        assert BAD_KEY not in html
        assert not Provider.objects.exists()

    def test_a_hanging_endpoint_is_reported_within_the_timeout(self, alice_client, fake_openai, settings):
        settings.LLMHUB_VALIDATION_TIMEOUT = 1
        fake_openai.hang_next(10)
        html = connect(alice_client, fake_openai, GOOD_KEYS["openai"]).content.decode()
        assert "OpenAI did not answer within 1 second. Try again." in html

    def test_saving_checks_first_and_offers_to_save_anyway(self, alice_client, fake_openai):
        html = connect(alice_client, fake_openai, BAD_KEY, action="save").content.decode()
        assert "Nothing was saved" in html and 'value="save_anyway"' in html
        assert not Provider.objects.exists()
        response = connect(alice_client, fake_openai, BAD_KEY, action="save_anyway")
        provider = Provider.objects.get()
        assert response["HX-Redirect"] == f"/providers/{provider.id}/models/"
        assert provider.last_validated_at is None

    def test_saving_a_good_key_stores_it_for_the_team_and_audits_it(self, alice_client, fake_openai, alpha):
        response = connect(
            alice_client, fake_openai, GOOD_KEYS["openai"], action="save", organization_id="org-7"
        )
        assert response["HX-Redirect"] == "/providers/openai/models/"
        provider = Provider.objects.get()
        assert provider.team == alpha and provider.last_validated_at is not None
        assert provider.credentials() == {"api_key": GOOD_KEYS["openai"], "organization_id": "org-7"}
        entry = AuditEntry.objects.get(action="credentials_added")
        assert entry.actor_name == "alice" and entry.team == alpha
        assert entry.after["masked_key"] == "sk-...vX2Q"
        assert GOOD_KEYS["openai"] not in str(entry.before) + str(entry.after)

    def test_a_second_team_gets_its_own_provider_id(self, alice_client, charlie_client, fake_openai):
        connect(alice_client, fake_openai, GOOD_KEYS["openai"], action="save")
        response = connect(charlie_client, fake_openai, GOOD_KEYS["openai"], action="save")
        assert response["HX-Redirect"] == "/providers/openai-2/models/"

    def test_a_missing_key_is_a_form_error(self, alice_client, fake_openai):
        html = connect(alice_client, fake_openai, "", action="save").content.decode()
        assert "This field is required." in html


class TestChoosingAModel:
    @pytest.fixture
    def openai(self, alpha, fake_openai):
        return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)

    def test_it_lists_models_with_prices_per_million_and_the_default_highlighted(self, alice_client, openai):
        html = alice_client.get("/providers/openai/models/").content.decode()
        assert '<tr id="model-gpt-4o" class="default">' in html
        assert "$2.50</td><td>$10.00</td>" in html and "$0.15</td><td>$0.60</td>" in html
        assert "128,000" in html and "Use this model" in html

    def test_use_this_model_sets_the_team_default_and_audits_it(self, alice_client, openai, alpha):
        response = alice_client.post("/providers/openai/models/", {"model": "openai/gpt-4o-mini"})
        assert response.url == "/"
        alpha.refresh_from_db()
        assert alpha.default_model == "openai/gpt-4o-mini"
        entry = AuditEntry.objects.get(action="default_model_changed")
        assert (entry.before, entry.after) == ({"model": ""}, {"model": "openai/gpt-4o-mini"})
        assert "GPT-4o mini" in alice_client.get("/").content.decode()

    def test_the_first_providers_default_is_used_until_changed(self, alice_client, openai):
        html = alice_client.get("/").content.decode()
        assert "OpenAI GPT-4o" in html and "openai/gpt-4o" in html

    def test_it_refuses_a_model_of_another_provider(self, alice_client, openai):
        alice_client.post("/providers/openai/models/", {"model": "anthropic/claude-opus-4-5"})
        assert Team.objects.get(name="Alpha").default_model == ""


class TestSettings:
    @pytest.fixture
    def openai(self, alpha, fake_openai):
        return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)

    def test_it_lists_providers_with_status_and_masked_key(self, alice_client, openai):
        html = alice_client.get("/providers/settings/").content.decode()
        assert "<code>sk-...vX2Q</code>" in html and "Enabled" in html and "never" in html

    def test_toggling_returns_the_new_row_and_audits(self, alice_client, openai):
        html = alice_client.post("/providers/openai/toggle/", **HTMX).content.decode()
        assert html.strip().startswith('<tr id="provider-openai">') and "Disabled" in html
        assert not Provider.objects.get().enabled
        assert AuditEntry.objects.exclude(action="signed_in").get().action == "provider_disabled"
        alice_client.post("/providers/openai/toggle/", **HTMX)
        assert AuditEntry.objects.first().action == "provider_enabled"

    def test_editing_without_a_new_key_keeps_the_old_one_and_never_shows_it(
        self, alice_client, openai, fake_openai
    ):
        page = alice_client.get("/providers/openai/edit/").content.decode()
        assert "unchanged (sk-...vX2Q)" in page and GOOD_KEYS["openai"] not in page
        response = alice_client.post(
            "/providers/openai/edit/",
            {"api_key": "", "endpoint": fake_openai.url, "display_name": "OpenAI prod", "action": "save"},
            **HTMX,
        )
        assert response["HX-Redirect"] == "/providers/settings/"
        provider = Provider.objects.get()
        assert provider.display_name == "OpenAI prod"
        assert provider.credentials()["api_key"] == GOOD_KEYS["openai"]
        assert AuditEntry.objects.exclude(action="signed_in").get().action == "provider_updated"

    def test_a_replacement_key_is_checked_before_it_is_saved(self, alice_client, openai, fake_openai):
        html = alice_client.post(
            "/providers/openai/edit/",
            {"api_key": BAD_KEY, "endpoint": fake_openai.url, "action": "save"},
            **HTMX,
        ).content.decode()
        assert "Your OpenAI API key is invalid" in html
        assert Provider.objects.get().credentials()["api_key"] == GOOD_KEYS["openai"]

    def test_replacing_the_key_audits_masks_only(self, alice_client, openai, fake_openai):
        fake_openai.api_keys.add("sk-second-good-key-000000009999")
        alice_client.post(
            "/providers/openai/edit/",
            {"api_key": "sk-second-good-key-000000009999", "endpoint": fake_openai.url, "action": "save"},
            **HTMX,
        )
        entry = AuditEntry.objects.get(action="credentials_updated")
        assert (entry.before["masked_key"], entry.after["masked_key"]) == ("sk-...vX2Q", "sk-...9999")
        assert "second-good-key" not in str(entry.after)

    def test_changing_the_endpoint_revalidates(self, alice_client, openai, fake_openai):
        data = {"api_key": GOOD_KEYS["openai"], "endpoint": "http://127.0.0.1:9/v1", "action": "save"}
        html = alice_client.post("/providers/openai/edit/", data, **HTMX).content.decode()
        assert "Connection refused by http://127.0.0.1:9/v1. Is OpenAI running there?" in html
        assert Provider.objects.get().endpoint == fake_openai.url

    def test_deleting_asks_first_then_destroys_the_credentials(self, alice_client, openai):
        page = alice_client.get("/providers/openai/delete/").content.decode()
        assert "Delete OpenAI?" in page and Provider.objects.exists()
        assert alice_client.post("/providers/openai/delete/").url == "/providers/settings/"
        assert not Provider.objects.exists()
        entry = AuditEntry.objects.get(action="credentials_removed")
        assert entry.object_id == "openai" and entry.before["masked_key"] == "sk-...vX2Q"

    def test_the_default_model_for_new_automations_can_be_changed(self, alice_client, openai, alpha):
        response = alice_client.post("/providers/settings/default-model/", {"model": "openai/o3-mini"})
        assert response.url == "/providers/settings/"
        alpha.refresh_from_db()
        assert alpha.default_model == "openai/o3-mini"

    def test_a_shared_provider_is_listed_but_only_staff_manage_it(self, alice_client, fake_openai):
        registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]})
        html = alice_client.get("/providers/settings/").content.decode()
        assert "shared" in html and "managed by instance staff" in html
        assert alice_client.post("/providers/anthropic/toggle/").status_code == 403
