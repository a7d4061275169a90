"""The set-up form shows only its dialect's fields; custom definitions refuse what would open the
hub's network; models can be listed by id alone."""

from __future__ import annotations

import pytest

from providers.models import CustomKind, ProviderModel
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_vllm():
    fake = FakeOpenAI(api_keys={"vllm-key-0000000000000000"}).start()
    yield fake
    fake.stop()


def define(client, url, **overrides):
    form = {
        "name": "Office vLLM",
        "id": "",
        "dialect": "openai",
        "endpoint": url,
        "key_required": "on",
        "auth_scheme": "Bearer",
        "models": "llama-3.1-8b-instruct",
    } | overrides
    return client.post("/providers/connect/custom/", form)


def test_a_compatible_server_is_not_asked_for_an_openai_organization(alice_client, fake_vllm):
    assert 'name="organization_id"' in alice_client.get("/providers/connect/openai/").content.decode()
    define(alice_client, fake_vllm.url)
    page = alice_client.get("/providers/connect/office-vllm/").content.decode()
    assert 'name="api_key"' in page and 'name="organization_id"' not in page


def test_ollamas_key_is_optional_and_its_link_is_not_about_keys(alice_client):
    page = alice_client.get("/providers/connect/ollama/").content.decode()
    assert "Connect Ollama" in page and "Enter your Ollama API key" not in page
    assert "Setting up Ollama" in page and "Where to find your key" not in page
    assert "(optional)" in page


def test_model_ids_alone_take_limits_from_the_catalogue_or_defaults(alice_client, fake_vllm):
    response = define(alice_client, fake_vllm.url, models="gpt-4o\nmy-finetune-7b\nqwen 32768 4096")
    assert response.status_code == 302
    definition = CustomKind.objects.get().definition
    limits = {m["id"]: (m["context_window"], m["max_output"]) for m in definition["models"]}
    assert limits["gpt-4o"] == (128000, 16384)
    assert limits["my-finetune-7b"] == (8192, 4096)
    assert limits["qwen"] == (32768, 4096)
    assert not ProviderModel.objects.exists()


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("headers", "Metadata-Flavor: Google", "metadata service"),
        ("headers", "Metadata: true", "metadata service"),
        ("headers", "Host: 169.254.169.254", "cannot be set"),
        ("endpoint", "https://api.example.com/v1?x=1", "query string"),
        ("endpoint", "https://api.example.com/v1#x", "fragment"),
        ("endpoint", "http://169.254.169.254/computeMetadata/v1", "link-local address"),
    ],
)
def test_a_custom_definition_refuses_what_opens_the_hubs_network(alice_client, settings, field, value, says):
    settings.LLMHUB_ALLOWED_PRIVATE_NETWORKS = []
    html = define(alice_client, "https://llm.example.com/v1", **{field: value}).content.decode()
    assert says in html
    assert not CustomKind.objects.exists()
