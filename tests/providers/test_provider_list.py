"""Settings → Providers: each provider once, compact actions, Reload only with a providers file,
Sync models per provider; and the models a team may use read in a constant number of queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Team, User
from audit.models import AuditEntry
from providers.models import CustomKind, ProviderModel
from providers.registry import registry
from tests.conftest import GOOD_KEYS, PASSWORD

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
VLLM = {
    "id": "office-vllm",
    "name": "Office vLLM",
    "dialect": "openai",
    "endpoint": "http://127.0.0.1:9/v1",
    "key_required": False,
    "models": [
        {
            "id": "llama-3.1-8b-instruct",
            "context_window": 8192,
            "max_output": 2048,
            "input_per_1m": "0.10",
            "output_per_1m": "0.20",
        }
    ],
}


@pytest.fixture
def ollama(alpha, fake_ollama):
    return registry.save("ollama", {"api_key": GOOD_KEYS["ollama"]}, endpoint=fake_ollama.url, team=alpha)


def test_a_connected_custom_provider_is_listed_once(alice_client, alpha):
    CustomKind.objects.create(id="office-vllm", team=alpha, definition=VLLM)
    CustomKind.objects.create(
        id="lab-vllm", team=alpha, definition={**VLLM, "id": "lab-vllm", "name": "Lab vLLM"}
    )
    registry.save("office-vllm", {}, team=alpha)
    html = alice_client.get("/providers/settings/").content.decode()
    assert html.count('<tr id="provider-') == 1 and 'id="custom-office-vllm"' not in html  # its row only
    assert "/providers/custom/office-vllm/edit/" in html
    assert "Custom providers not connected yet" in html and "Lab vLLM" in html


def test_reload_is_offered_only_when_a_providers_file_is_configured(alpha, settings, tmp_path):
    staff = User.objects.create_user("root", password=PASSWORD, is_staff=True)
    client = Client()
    client.force_login(staff)
    settings.LLMHUB_PROVIDERS_FILE = ""
    assert "Reload providers file" not in client.get("/providers/settings/").content.decode()
    settings.LLMHUB_PROVIDERS_FILE = str(tmp_path / "providers.toml")
    assert "Reload providers file" in client.get("/providers/settings/").content.decode()


def test_each_row_has_one_toggle_and_an_actions_menu(alice_client, ollama):
    html = alice_client.get("/providers/settings/").content.decode()
    row = html.split('<tr id="provider-ollama">')[1].split("</tr>")[0]
    assert 'aria-controls="provider-ollama-actions"' in row and 'aria-expanded="false"' in row
    for action in ("Disable", "Sync models", "Models", "Budget", "Edit", "Delete"):
        assert f">{action}<" in row


def test_sync_models_lists_what_the_server_has_now(alice_client, ollama):
    assert not ProviderModel.objects.filter(pk="ollama/mistral:latest").exists()
    html = alice_client.post("/providers/ollama/sync/", **HTMX).content.decode()
    assert "ollama: 4 models listed; added mistral:latest;" in html and 'class="sync-result ok"' in html
    assert ProviderModel.objects.filter(pk="ollama/mistral:latest").exists()
    assert AuditEntry.objects.get(action="models_synced").after == {"added": ["mistral:latest"], "listed": 4}


def test_a_failed_sync_says_why(alice_client, ollama, fake_ollama):
    fake_ollama.stop()
    html = alice_client.post("/providers/ollama/sync/", **HTMX).content.decode()
    assert f"Sync failed: Connection refused by {fake_ollama.url}" in html


def test_only_the_teams_admins_sync(bob_client, charlie_client, ollama):
    assert bob_client.post("/providers/ollama/sync/").status_code == 403
    assert charlie_client.post("/providers/ollama/sync/").status_code == 403


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", ["/playground/", "/providers/settings/", "/settings/api-keys/", "/"])
def test_a_page_costs_the_same_queries_whatever_other_teams_connect(alice_client, alpha, url):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, team=alpha)
    others = Team.objects.create(name="Others")
    registry.save(
        "anthropic", {"api_key": GOOD_KEYS["anthropic"]}, provider_id="their-anthropic", team=others
    )
    before = _queries(alice_client, url)
    for n in range(6):
        registry.save(
            "gemini", {"api_key": GOOD_KEYS["gemini"]}, provider_id=f"their-gemini-{n}", team=others
        )
    assert _queries(alice_client, url) == before


def test_the_playground_stays_within_its_query_bound(alice_client, alpha, django_assert_max_num_queries):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, team=alpha)
    others = Team.objects.create(name="Others")
    for n in range(8):  # was +8 queries per provider of another team
        registry.save(
            "gemini", {"api_key": GOOD_KEYS["gemini"]}, provider_id=f"their-gemini-{n}", team=others
        )
    with django_assert_max_num_queries(10):
        alice_client.get("/playground/")
