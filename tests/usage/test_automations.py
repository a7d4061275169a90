"""Automations and the playground: create, price before running, switch model with the difference shown."""

from __future__ import annotations

from decimal import Decimal

import pytest

from audit.models import AuditEntry
from automations.models import Automation
from providers.pricing import format_usd
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def providers(alpha, fake_openai, fake_anthropic):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=fake_anthropic.url, team=alpha)


@pytest.fixture
def summarize(alpha, providers):
    return Automation.objects.create(
        team=alpha,
        name="Summarize",
        system_prompt="Be brief.",
        prompt_template="Summarize for {audience}:\n\n{text}",
        max_tokens=400,
    )


def test_an_admin_creates_an_automation_with_named_inputs(alice_client, providers):
    response = alice_client.post(
        "/automations/new/",
        {
            "name": "Translate",
            "prompt_template": "Translate to {language}: {text}",
            "model": "",
            "max_tokens": 300,
        },
    )
    automation = Automation.objects.get()
    assert response.url == f"/automations/{automation.pk}/"
    assert automation.input_names() == ["language", "text"]
    assert AuditEntry.objects.exclude(action="signed_in").get().action == "automation_created"


@pytest.mark.parametrize(
    ("template", "message"),
    [("Hello {name", "Braces do not match"), ("Hi {user.name}", "is not an input name")],
)
def test_a_malformed_template_is_explained_and_nothing_is_lost(alice_client, providers, template, message):
    html = alice_client.post(
        "/automations/new/", {"name": "Broken", "prompt_template": template, "max_tokens": 300}
    ).content.decode()
    assert message in html and 'value="Broken"' in html
    assert not Automation.objects.exists()


def test_a_member_runs_but_does_not_edit(bob_client, summarize):
    assert bob_client.get(f"/automations/{summarize.pk}/").status_code == 200
    assert bob_client.get(f"/automations/{summarize.pk}/edit/").status_code == 403
    assert bob_client.get(f"/automations/{summarize.pk}/model/").status_code == 403


def test_another_team_cannot_see_it(charlie_client, summarize):
    assert charlie_client.get(f"/automations/{summarize.pk}/").status_code == 404


def test_running_shows_the_price_first_and_starts_nothing(bob_client, summarize, bob):
    response = bob_client.post(
        f"/automations/{summarize.pk}/", {"audience": "executives", "text": "Quarterly numbers."}
    )
    run = Run.objects.get()
    assert response.url == f"/runs/{run.uuid}/"
    assert run.status == Run.Status.PENDING and run.user == bob
    assert run.model_requested == "openai/gpt-4o"  # the team default: the first provider's default
    assert run.messages[1]["content"] == "Summarize for executives:\n\nQuarterly numbers."
    # gpt-4o at $2.50 / $10 per 1M: the ceiling is the input plus 400 output tokens
    expected_max = (Decimal("2.5") * run.estimated_input_tokens + Decimal("10") * 400) / 1_000_000
    assert run.max_cost_usd == expected_max
    html = bob_client.get(f"/runs/{run.uuid}/").content.decode()
    # Prices below a dollar are written with two significant digits, the one money format.
    assert f"Estimated {format_usd(run.estimated_cost_usd)}, at most {format_usd(run.max_cost_usd)}" in html
    assert 'ws-connect="/ws/runs/' in html and "Start run" in html


def test_the_picker_shows_each_models_cost_per_run_and_the_difference(alice_client, summarize):
    html = alice_client.get(f"/automations/{summarize.pk}/model/").content.decode()
    assert "OpenAI" in html and "Anthropic" in html
    assert 'id="pick-openai-gpt-4o" class="default"' in html and "current" in html
    assert "less per run" in html  # gpt-4o-mini is cheaper than gpt-4o
    assert "more per run" in html  # claude-opus-4-5 costs more
    confirm = alice_client.get(
        f"/automations/{summarize.pk}/model/?model=anthropic/claude-sonnet-4-5"
    ).content.decode()
    assert "Switch to Anthropic Claude Sonnet 4.5?" in confirm and "more per run" in confirm


def test_switching_the_model_is_audited_and_used_by_the_next_run(alice_client, summarize):
    alice_client.post(f"/automations/{summarize.pk}/model/switch/", {"model": "anthropic/claude-haiku-4-5"})
    summarize.refresh_from_db()
    assert summarize.model == "anthropic/claude-haiku-4-5"
    entry = AuditEntry.objects.get(action="model_changed")
    assert (entry.before, entry.after) == (
        {"model": "openai/gpt-4o"},
        {"model": "anthropic/claude-haiku-4-5"},
    )
    alice_client.post(f"/automations/{summarize.pk}/", {"audience": "a", "text": "b"})
    assert Run.objects.get().model_requested == "anthropic/claude-haiku-4-5"


def test_a_disabled_provider_refuses_the_run_with_a_reason(alice_client, summarize):
    summarize.model = "openai/gpt-4o"
    summarize.save()
    registry.disable("openai")
    html = alice_client.post(f"/automations/{summarize.pk}/", {"audience": "a", "text": "b"}).content.decode()
    assert not Run.objects.exists()
    assert "OpenAI is disabled. An admin can enable it in Settings → Providers." in html


def test_without_its_own_model_an_automation_follows_the_team_default(alice_client, summarize):
    registry.disable("openai")
    alice_client.post(f"/automations/{summarize.pk}/", {"audience": "a", "text": "b"})
    assert Run.objects.get().model_requested == "anthropic/claude-sonnet-4-5"


def test_the_playground_prices_any_enabled_model(bob_client, providers):
    page = bob_client.get("/playground/").content.decode()
    assert '<optgroup label="Anthropic">' in page
    response = bob_client.post(
        "/playground/", {"model": "anthropic/claude-haiku-4-5", "message": "Hi", "max_tokens": 100}
    )
    run = Run.objects.get()
    assert response.url == f"/runs/{run.uuid}/"
    assert run.automation is None and run.max_tokens == 100
    # Claude's tokenizer is not public: the estimate errs high
    assert run.estimated_input_tokens >= 10


def test_the_playground_explains_a_model_it_cannot_run(bob_client, providers):
    html = bob_client.post(
        "/playground/", {"model": "openai/gpt-99", "message": "Hi", "max_tokens": 100}
    ).content.decode()
    assert "Select a valid choice" in html and "Hi</textarea>" in html


def test_the_list_is_searchable_and_paged_with_model_last_run_and_cost(alice_client, alpha, alice, providers):
    for n in range(25):
        Automation.objects.create(team=alpha, name=f"Task {n:02d}", prompt_template="Do {thing}")
    digest = Automation.objects.create(
        team=alpha, name="Weekly digest", prompt_template="Digest {notes}", model="anthropic/claude-haiku-4-5"
    )
    for cost in ("0.002", "0.004"):
        Run.objects.create(
            team=alpha,
            user=alice,
            automation=digest,
            model_requested=digest.model,
            messages=[],
            max_tokens=10,
            status="completed",
            cost_usd=Decimal(cost),
        )
    first = alice_client.get("/automations/").content.decode()
    assert first.count('<tr id="automation-') == 20 and "Page 1 of 2" in first
    assert '<code>openai/gpt-4o</code> <span class="muted">team default</span>' in first
    found = alice_client.get("/automations/?q=digest").content.decode()
    assert found.count('<tr id="automation-') == 1
    assert "<code>anthropic/claude-haiku-4-5</code>" in found and "$0.003" in found and " ago</time>" in found
    assert (
        "No automation matches “nothing like it”"
        in alice_client.get("/automations/?q=nothing+like+it").content.decode()
    )
    assert alice_client.get("/automations/?q=Task&page=2").content.decode().count('<tr id="automation-') == 5


def test_the_list_costs_the_same_queries_with_many_automations(alice_client, alpha, alice, providers):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            alice_client.get("/automations/")
        return len(captured)

    Automation.objects.create(team=alpha, name="First", prompt_template="{x}")
    before = queries()
    for n in range(15):
        automation = Automation.objects.create(team=alpha, name=f"More {n}", prompt_template="{x}")
        Run.objects.create(
            team=alpha,
            user=alice,
            automation=automation,
            model_requested="openai/gpt-4o",
            messages=[],
            max_tokens=10,
            status="completed",
            cost_usd=Decimal("0.01"),
        )
    assert queries() == before
