"""Fallback order in a real browser: keyboard buttons and drag and drop both reorder the list."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from tests.browser.conftest import snapshot
from tests.browser.test_runs import sign_in
from tests.conftest import GOOD_KEYS

pytestmark = pytest.mark.django_db(transaction=True)


async def test_an_admin_reorders_the_fallback_list_and_saves(page):
    def cast():
        from accounts.models import Membership, Team, User
        from providers.registry import registry
        from usage.models import FallbackPolicy

        team = Team.objects.create(name="Research")
        user = User.objects.create_user("ada", password="a-long-passphrase-9")
        Membership.objects.create(user=user, team=team, role="admin")
        registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, team=team)
        registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]}, team=team)
        FallbackPolicy.objects.create(
            team=team, order=["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "openai/o3-mini"]
        )

    await sync_to_async(cast)()
    await sign_in(page)
    await page.get_by_role("link", name="Fallback", exact=True).click()
    items = page.locator("#fallback-order li")
    await expect(items).to_have_count(3)
    await page.get_by_role("button", name="Move Claude Haiku 4.5 up").press("Enter")  # keyboard-usable
    await expect(items.first).to_contain_text("claude-haiku-4-5")
    await items.nth(2).drag_to(items.first)  # o3-mini dragged to the top
    await expect(items.first).to_contain_text("o3-mini")
    await page.get_by_label("Auto-fallback to other models").check()
    await page.get_by_label("Always ask before switching providers").check()
    await snapshot(page, "18-fallback-order")
    await page.get_by_role("button", name="Save fallback settings").click()
    await expect(page.get_by_text("Fallback settings saved.")).to_be_visible()

    from usage.models import FallbackPolicy

    policy = await FallbackPolicy.objects.aget()
    assert policy.order == ["openai/o3-mini", "anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"]
    assert policy.enabled and policy.ask_before_switching
