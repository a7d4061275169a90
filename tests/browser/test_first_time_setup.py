"""The first-time flow in a real browser, from an empty database, against a fake OpenAI."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from audit.models import AuditEntry
from providers.models import Provider
from tests.browser.conftest import snapshot
from tests.conftest import BAD_KEY, GOOD_KEYS

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_new_admin_connects_a_provider_and_picks_a_model(page, fake_openai):
    # 1. A fresh install: the first visit offers to create the admin account.
    await page.goto("/")
    await expect(page.get_by_role("heading", name="Welcome to LLMHub")).to_be_visible()
    await page.get_by_label("Username").fill("ada")
    await page.get_by_label("Team name").fill("Research")
    await page.get_by_label("Password", exact=True).fill("a-long-passphrase-9")
    await page.get_by_label("Password again").fill("a-long-passphrase-9")
    await snapshot(page, "01-create-admin")
    await page.get_by_role("button", name="Create admin account").click()

    # 2. No provider yet: the provider cards.
    await expect(page.get_by_role("heading", name="Connect your LLM provider")).to_be_visible()
    await expect(page.locator("#kind-anthropic")).to_be_visible()
    await snapshot(page, "02-provider-cards")
    await page.get_by_role("link", name="Connect OpenAI").click()

    # 3. The set-up form: a masked key that can be shown, the key link, the endpoint override.
    key = page.get_by_label("API key")
    await expect(key).to_have_attribute("type", "password")
    await expect(page.get_by_role("link", name="Where to find your key ↗")).to_have_attribute(
        "href", "https://platform.openai.com/api-keys"
    )
    await key.fill(BAD_KEY)
    await page.get_by_role("button", name="Show").click()
    await expect(key).to_have_attribute("type", "text")
    await page.get_by_role("button", name="Hide").click()
    await expect(key).to_have_attribute("type", "password")
    await page.get_by_text("Advanced: endpoint and name").click()
    await page.get_by_label("Endpoint").fill(fake_openai.url)

    # 4. Test connection, in place: a wrong key shows the exact message, the typed values stay.
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.get_by_role("alert")).to_have_text(
        "✗ Your OpenAI API key is invalid. Please check and try again."
    )
    await expect(page.get_by_label("Endpoint")).to_have_value(fake_openai.url)
    await snapshot(page, "03-wrong-key")
    await key.fill(GOOD_KEYS["openai"])
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.get_by_text("✓ Connected: OpenAI accepted the key.")).to_be_visible()
    await snapshot(page, "04-right-key")
    assert not await Provider.objects.aexists()  # testing saves nothing

    # 5. Model selection, with prices per 1M tokens and the default highlighted.
    await page.get_by_role("button", name="Save and choose a model").click()
    await expect(page.get_by_role("heading", name="Choose a model from OpenAI")).to_be_visible()
    await expect(page.locator("#model-gpt-4o")).to_have_class("default")
    await expect(page.locator("#model-gpt-4o-mini")).to_contain_text("$0.15")
    await snapshot(page, "05-choose-model")
    await page.get_by_role("button", name="Use this model for GPT-4o mini").click()

    # 6. Done: the home page names the chosen model.
    await expect(page.locator("#default-model")).to_contain_text("OpenAI GPT-4o mini")
    await expect(page.locator("#default-model")).to_contain_text("openai/gpt-4o-mini")
    await snapshot(page, "06-home")
    html = await page.content()
    assert GOOD_KEYS["openai"] not in html
    actions = await sync_to_async(lambda: list(AuditEntry.objects.values_list("action", flat=True)))()
    assert set(actions) >= {"admin_created", "credentials_added", "default_model_changed"}


async def test_an_admin_disables_and_deletes_a_provider(page, fake_openai):
    from accounts.models import Membership, Team, User
    from providers.registry import registry

    def cast() -> None:
        team = Team.objects.create(name="Research")
        user = User.objects.create_user("ada", password="a-long-passphrase-9")
        Membership.objects.create(user=user, team=team, role="admin")
        registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=team)

    await sync_to_async(cast)()
    await page.goto("/accounts/login/")
    await page.get_by_label("Username").fill("ada")
    await page.get_by_label("Password").fill("a-long-passphrase-9")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("link", name="Providers", exact=True).click()

    row = page.locator("#provider-openai")
    await expect(row).to_contain_text("sk-...vX2Q")
    await expect(row).to_contain_text("Enabled")
    await row.get_by_role("button", name="Disable").click()
    await expect(row).to_contain_text("Disabled")
    await expect(row.get_by_role("button", name="Enable")).to_be_visible()
    await snapshot(page, "07-disabled")
    assert not (await Provider.objects.aget(pk="openai")).enabled

    await row.get_by_role("link", name="Delete").click()
    await expect(page.get_by_role("heading", name="Delete OpenAI?")).to_be_visible()
    await snapshot(page, "08-confirm-delete")
    await page.get_by_role("button", name="Delete OpenAI").click()
    await expect(page.get_by_text("OpenAI removed; its credentials are destroyed.")).to_be_visible()
    await expect(page.locator("#provider-openai")).to_have_count(0)
    await snapshot(page, "09-deleted")
    assert not await Provider.objects.aexists()
