"""Runs in a real browser: the price first, text streaming into the page, cancel, and a model switch."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from tests.browser.conftest import snapshot
from tests.conftest import GOOD_KEYS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def signed_in_cast(fake_openai, fake_anthropic):
    def cast():
        from accounts.models import Membership, Team, User
        from automations.models import Automation
        from providers.registry import registry

        team = Team.objects.create(name="Research")
        user = User.objects.create_user("ada", password="a-long-passphrase-9")
        Membership.objects.create(user=user, team=team, role="admin")
        registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=team)
        registry.save(
            "anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=fake_anthropic.url, team=team
        )
        return Automation.objects.create(
            team=team, name="Summarize", prompt_template="Summarize: {text}", max_tokens=600
        )

    return cast


async def sign_in(page) -> None:
    await page.goto("/accounts/login/")
    await page.get_by_label("Username").fill("ada")
    await page.get_by_label("Password").fill("a-long-passphrase-9")
    await page.get_by_role("button", name="Sign in").click()


async def test_a_run_shows_its_price_then_streams_into_the_page(page, signed_in_cast, fake_openai):
    automation = await sync_to_async(signed_in_cast)()
    fake_openai.reply_text = " ".join(f"word{n}" for n in range(60))
    fake_openai.chunk_delay = 0.03
    await sign_in(page)
    await page.goto(f"/automations/{automation.pk}/")
    await expect(page.get_by_text("Current: OpenAI gpt-4o")).to_be_visible()
    await page.get_by_label("Text").fill("The quarterly report.")
    await page.get_by_role("button", name="Show the price").click()

    cost = page.locator("[id$='-cost']")
    await expect(cost).to_contain_text("Estimated $")
    await expect(cost).to_contain_text(", at most $")
    await snapshot(page, "10-run-price")
    await page.get_by_role("button", name="Start run").click()
    output = page.locator("pre.output")
    await expect(output).to_contain_text("word5")  # text arrives while the run streams
    assert "word59" not in await output.inner_text()
    await expect(page.get_by_text("✓ Completed.")).to_be_visible()
    await expect(output).to_have_text(fake_openai.reply_text)
    await expect(cost).to_contain_text("output tokens")
    await snapshot(page, "11-run-completed")


async def test_cancel_stops_a_run_mid_stream_and_keeps_its_text(page, signed_in_cast, fake_openai):
    automation = await sync_to_async(signed_in_cast)()
    fake_openai.reply_text = " ".join(f"word{n}" for n in range(500))
    fake_openai.chunk_delay = 0.03
    await sign_in(page)
    await page.goto(f"/automations/{automation.pk}/")
    await page.get_by_label("Text").fill("Something long.")
    await page.get_by_role("button", name="Show the price").click()
    await page.get_by_role("button", name="Start run").click()
    output = page.locator("pre.output")
    await expect(output).to_contain_text("word3")
    await page.get_by_role("button", name="Cancel").click()
    await expect(page.get_by_text("Cancelled.", exact=True)).to_be_visible()
    kept = await output.inner_text()
    assert "word3" in kept and "word499" not in kept
    assert await asyncio.to_thread(fake_openai.client_disconnected.wait, 5)
    await snapshot(page, "12-run-cancelled")


async def test_switching_the_model_shows_the_cost_difference_first(page, signed_in_cast):
    automation = await sync_to_async(signed_in_cast)()
    await sign_in(page)
    await page.goto(f"/automations/{automation.pk}/")
    await page.get_by_role("link", name="Change model").click()
    row = page.locator("#pick-anthropic-claude-opus-4-5")
    await expect(row).to_contain_text("more per run")
    await expect(page.locator("#pick-openai-gpt-4o-mini")).to_contain_text("less per run")
    await snapshot(page, "13-model-picker")
    await page.locator("#pick-anthropic-claude-sonnet-4-5").get_by_role("link", name="Choose").click()
    await expect(page.get_by_role("heading", name="Switch to Anthropic Claude Sonnet 4.5?")).to_be_visible()
    await expect(page.locator("#confirm-switch")).to_contain_text("more per run")
    await page.get_by_role("button", name="Switch to Claude Sonnet 4.5").click()
    await expect(page.get_by_text("Current: Anthropic claude-sonnet-4-5")).to_be_visible()
    await snapshot(page, "14-model-switched")
