"""A provider defined in the browser ("+ Add provider → Custom provider"), stored in the database,
and then set up, tested, priced, budgeted and run exactly like a built-in one."""

from __future__ import annotations

import html
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from audit.models import AuditEntry
from providers.base import Delta, Message
from providers.models import CustomKind, Provider
from providers.pricing import format_usd
from providers.registry import registry
from tests.fakes.openai import FakeOpenAI
from usage import runs
from usage.events import Ended
from usage.models import Budget, Run, UsageRecord

VLLM_KEY = "vllm-local-key-000000000000Qz7"


@pytest.fixture
def fake_vllm():
    fake = FakeOpenAI(api_keys={VLLM_KEY})
    fake.models = ["llama-3.1-8b-instruct", "qwen2.5-coder-7b"]
    fake.start()
    yield fake
    fake.stop()


def define(client, fake, **overrides):
    form = {
        "name": "Office vLLM",
        "id": "",
        "dialect": "openai",
        "endpoint": fake.url,
        "key_required": "on",
        "auth_scheme": "Bearer",
        "models": "llama-3.1-8b-instruct 131072 8192 0.10 0.20",
    } | overrides
    return client.post("/providers/connect/custom/", {k: v for k, v in form.items() if v is not None})


@pytest.mark.django_db
def test_the_custom_card_leads_to_a_definition_then_the_usual_set_up(alice_client, fake_vllm):
    assert 'href="/providers/connect/custom/"' in alice_client.get("/providers/connect/").content.decode()
    response = define(alice_client, fake_vllm)
    assert response.status_code == 302 and response.url == "/providers/connect/office-vllm/"
    page = alice_client.get(response.url).content.decode()
    assert "Enter your Office vLLM API key" in page and fake_vllm.url in page

    wrong = alice_client.post(response.url, {"api_key": "nope", "action": "test"}).content.decode()
    assert "✗" in wrong and "nope" not in wrong
    right = alice_client.post(response.url, {"api_key": VLLM_KEY, "action": "test"}).content.decode()
    assert "✓ Connected: Office vLLM accepted the key." in right
    saved = alice_client.post(response.url, {"api_key": VLLM_KEY, "action": "save"})
    assert saved.url == "/providers/office-vllm/models/"
    models = alice_client.get(saved.url).content.decode()
    assert "llama-3.1-8b-instruct" in models and "$0.10" in models and "$0.20" in models
    alice_client.post(saved.url, {"model": "office-vllm/llama-3.1-8b-instruct"})
    assert "office-vllm/llama-3.1-8b-instruct" in alice_client.get("/").content.decode()
    provider = Provider.objects.get(pk="office-vllm")
    assert provider.credentials() == {"api_key": VLLM_KEY} and provider.team.name == "Alpha"


@pytest.mark.django_db(transaction=True)
async def test_a_custom_provider_runs_with_streaming_cost_and_budget(alice_client, alice, alpha, fake_vllm):
    await sync_to_async(define)(alice_client, fake_vllm)
    await sync_to_async(registry.save)("office-vllm", {"api_key": VLLM_KEY}, team=alpha)
    budget = await Budget.objects.acreate(provider_id="office-vllm", monthly_limit_usd=Decimal("1"))
    run, text = await run_to_end(alice, alpha, "Hello there")
    assert run.status == Run.Status.COMPLETED and text == fake_vllm.reply_text
    usage = await UsageRecord.objects.aget(run_id=str(run.uuid))
    expected = (Decimal("0.10") * usage.input_tokens + Decimal("0.20") * usage.output_tokens) / 1_000_000
    assert usage.cost_usd == expected == run.cost_usd > 0

    budget.monthly_limit_usd = usage.cost_usd  # now spent in full: the next run is refused
    await budget.asave()
    calls = len(fake_vllm.requests)
    refused, _ = await run_to_end(alice, alpha, "Again")
    assert refused.status == Run.Status.FAILED
    # Sub-cent limits are kept and shown as they are (they were rounded to $0.00 once).
    await budget.arefresh_from_db()
    limit = format_usd(budget.monthly_limit_usd)
    assert refused.error_message.startswith("Monthly Office vLLM budget: $")
    assert f" of {limit} left; this run may cost up to $" in refused.error_message
    assert len(fake_vllm.requests) == calls  # never reached the server


async def run_to_end(user, team, prompt: str) -> tuple[Run, str]:
    run = await sync_to_async(runs.create_run)(
        user, team, "office-vllm/llama-3.1-8b-instruct", [Message("user", prompt)], 100
    )
    text = ""
    async for event in runs.stream(run):
        if isinstance(event, Delta):
            text += event.text
        elif isinstance(event, Ended):
            run = event.run
    return run, text


@pytest.mark.django_db
def test_without_models_the_servers_own_list_is_read_and_flagged_unpriced(alice_client, fake_vllm):
    fake_vllm.api_keys = {""}  # a keyless local server
    define(alice_client, fake_vllm, name="Lab box", models="", key_required=None)
    alice_client.post("/providers/connect/lab-box/", {"api_key": "", "action": "save"})
    provider = Provider.objects.get(pk="lab-box")
    assert sorted(provider.models.values_list("model_id", flat=True)) == fake_vllm.models
    page = alice_client.get("/providers/lab-box/models/").content.decode()
    assert page.count("price unknown") >= 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field_error"),
    [
        ({"models": "llama 131072"}, "Line 1: write the model id, optionally followed by its context window"),
        ({"models": "llama 131072 8192 cheap free"}, "input_per_1m 'cheap' is not a number"),
        ({"models": "llama 131072 0"}, "max_output must be a positive whole number of tokens"),
        ({"endpoint": "ftp://10.0.0.1/v1"}, "The endpoint must be an http:// or https:// URL"),
        ({"endpoint": "not a url"}, "Enter a valid URL."),
        ({"id": "openai"}, "The id 'openai' is already taken; choose another."),
        ({"id": "custom"}, "The id 'custom' is already taken"),
        ({"headers": "no colon here"}, "Line 1: write Name: value."),
        ({"headers": "X-Title: hub\nX-Api-Key: sk-abc"}, "Line 2: X-Api-Key looks like a key."),
        ({"default_model": "gpt-9"}, "default_model 'gpt-9' is not listed"),
    ],
)
def test_a_bad_definition_says_what_is_wrong_and_keeps_what_was_typed(
    alice_client, fake_vllm, overrides, field_error
):
    response = define(alice_client, fake_vllm, **overrides)
    page = html.unescape(response.content.decode())
    assert response.status_code == 200 and field_error in page
    assert 'value="Office vLLM"' in page  # nothing typed is lost
    assert not CustomKind.objects.exists()


@pytest.mark.django_db
def test_custom_providers_belong_to_their_team(alice_client, bob_client, charlie_client, fake_vllm):
    define(alice_client, fake_vllm)
    assert bob_client.get("/providers/connect/custom/").status_code == 403  # a member
    assert 'id="kind-office-vllm"' in alice_client.get("/providers/connect/").content.decode()
    assert 'id="kind-office-vllm"' not in charlie_client.get("/providers/connect/").content.decode()
    assert charlie_client.get("/providers/connect/office-vllm/").status_code == 404
    assert charlie_client.get("/providers/custom/office-vllm/edit/").status_code == 403


@pytest.mark.django_db
def test_editing_updates_connected_providers_and_deleting_waits_until_unused(alice_client, alpha, fake_vllm):
    define(alice_client, fake_vllm)
    registry.save("office-vllm", {"api_key": VLLM_KEY}, team=alpha)
    alice_client.post(
        "/providers/custom/office-vllm/edit/",
        {
            "name": "Office vLLM",
            "dialect": "openai",
            "endpoint": fake_vllm.url,
            "key_required": "on",
            "auth_scheme": "Bearer",
            "models": "llama-3.1-8b-instruct 131072 8192 0.12 0.24\nqwen2.5-coder-7b 32768 8192 0 0",
        },
    )
    entry = registry.model_info("office-vllm/llama-3.1-8b-instruct")
    assert (entry.info.input_per_1m, entry.info.output_per_1m) == (Decimal("0.12"), Decimal("0.24"))
    assert registry.model_info("office-vllm/qwen2.5-coder-7b").info.input_per_1m == 0

    page = alice_client.post("/providers/custom/office-vllm/delete/").content.decode()
    assert "still connected" in page and CustomKind.objects.filter(pk="office-vllm").exists()
    alice_client.post("/providers/office-vllm/delete/")
    alice_client.post("/providers/custom/office-vllm/delete/")
    assert not CustomKind.objects.exists()
    actions = list(
        AuditEntry.objects.filter(object_type="customkind").order_by("pk").values_list("action", flat=True)
    )
    assert actions == ["custom_provider_defined", "custom_provider_updated", "custom_provider_removed"]
    updated = AuditEntry.objects.get(action="custom_provider_updated")
    assert (
        "0.10" in updated.before["models"][0]["input_per_1m"]
        and updated.after["models"][1]["id"] == "qwen2.5-coder-7b"
    )


@pytest.mark.django_db
def test_a_key_header_and_prefix_from_the_form_reach_the_server(alice_client, fake_vllm):
    fake_vllm.auth_header, fake_vllm.auth_scheme = "api-key", ""
    define(alice_client, fake_vllm, auth_header="api-key", auth_scheme="", headers="X-Team: alpha")
    page = alice_client.post("/providers/connect/office-vllm/", {"api_key": VLLM_KEY, "action": "test"})
    assert "✓ Connected" in page.content.decode()
    assert fake_vllm.last_request.headers["api-key"] == VLLM_KEY
    assert fake_vllm.last_request.headers["x-team"] == "alpha"
