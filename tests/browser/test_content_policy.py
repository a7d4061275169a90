"""The Content-Security-Policy breaks nothing: a run streams over the websocket, htmx forms swap, the
spend charts draw, the team switch and a confirm dialog work, and the browser reports no violation."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from tests.browser.test_runs import sign_in, signed_in_cast  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_hubs_pages_work_under_its_policy(page, signed_in_cast, fake_openai):  # noqa: F811
    violations = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text)
            if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text
            else None
        ),
    )
    automation = await sync_to_async(signed_in_cast)()
    await sign_in(page)
    await page.goto(f"/automations/{automation.pk}/")
    await page.get_by_label("Text").fill("A report.")
    await page.get_by_role("button", name="Show the price").click()
    await page.get_by_role("button", name="Start run").click()
    await expect(page.locator("[id$='-cost']")).to_contain_text("Completed", timeout=15_000)
    await page.goto("/spend/")
    await expect(page.locator("canvas").first).to_be_visible()
    await page.goto("/providers/openai/edit/")
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.locator("#setup-result")).to_contain_text("Connected")
    await page.goto("/settings/api-keys/")
    await page.get_by_label("Name").fill("ci")
    await page.get_by_role("button", name="Create key").click()
    page.once("dialog", lambda dialog: dialog.dismiss())
    await page.get_by_role("button", name="Revoke").click()
    await expect(page.get_by_role("button", name="Revoke")).to_be_visible()  # dismissed: not revoked
    assert violations == []
