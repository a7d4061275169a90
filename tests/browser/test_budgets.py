"""Budgets and spend in a real browser: a slider sets a limit, a run is refused, the charts draw."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from providers.base import TokenCount
from tests.browser.conftest import snapshot
from tests.browser.test_runs import sign_in
from tests.conftest import GOOD_KEYS

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cast(fake_openai, fake_anthropic):
    def create():
        from accounts.models import Membership, Team, User
        from automations.models import Automation
        from providers.registry import registry
        from usage.records import record_usage

        team = Team.objects.create(name="Research")
        user = User.objects.create_user("ada", password="a-long-passphrase-9")
        Membership.objects.create(user=user, team=team, role="admin")
        registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=team)
        registry.save(
            "anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=fake_anthropic.url, team=team
        )
        record_usage("openai", "gpt-4o", TokenCount(100_000, 50_000), "run", team=team, user=user)  # $0.75
        record_usage(
            "anthropic", "claude-sonnet-4-5", TokenCount(100_000, 50_000), "run", team=team, user=user
        )  # $1.05
        return Automation.objects.create(team=team, name="Summarize", prompt_template="Summarize: {text}")

    return create


async def test_a_budget_set_with_the_slider_refuses_a_run_and_the_charts_show_the_usage(page, cast):
    automation = await sync_to_async(cast)()
    await sign_in(page)
    await page.get_by_role("link", name="Budgets", exact=True).click()
    await page.get_by_role("link", name="Set a budget for All of Research's runs").click()
    await expect(page.get_by_role("heading", name="Research team budget")).to_be_visible()
    slider = page.get_by_label("Monthly limit (USD) slider")
    await slider.focus()
    await page.keyboard.press("End")
    await expect(page.get_by_label("Monthly limit (USD)", exact=True)).to_have_value("100000")
    await page.keyboard.press("Home")
    for step in ("0.001", "0.002", "0.005", "0.01"):  # small budgets move a fraction of a cent at a time
        await page.keyboard.press("ArrowRight")
        await expect(page.get_by_label("Monthly limit (USD)", exact=True)).to_have_value(step)
    await page.keyboard.press("Home")  # all the way down: nothing more may be spent this month
    await expect(page.get_by_label("Monthly limit (USD)", exact=True)).to_have_value("0")
    await snapshot(page, "15-budget-slider")
    await page.get_by_role("button", name="Save budget").click()
    await expect(page.get_by_text("Research team budget saved.")).to_be_visible()
    await expect(page.get_by_text("This month: $1.80 spent")).to_be_visible()

    await page.goto(f"/automations/{automation.pk}/")
    await page.get_by_label("Text").fill("Anything.")
    await page.get_by_role("button", name="Show the price").click()
    await page.get_by_role("button", name="Start run").click()
    refusal = page.get_by_role("alert")
    await expect(refusal).to_contain_text(
        "Monthly Research team budget: $0.00 of $0.00 left; this run may cost up to $"
    )
    await snapshot(page, "16-run-refused")

    # The banner follows the new limit at once, and closes for the rest of the month.
    banner = page.locator(".flash.alert")
    await expect(banner).to_contain_text(
        "The Research team budget allows nothing this month, and $1.80 is spent."
    )
    await banner.get_by_role("button", name="Dismiss for this month").click()
    await expect(banner).to_have_count(0)
    await page.reload()
    await expect(page.get_by_text("Monthly Research team budget")).to_be_visible()
    await expect(banner).to_have_count(0)

    await page.get_by_role("link", name="Spend", exact=True).click()
    await expect(page.locator("#on-track")).to_contain_text("You're on track for $")
    for chart in ("chart-providers", "chart-models", "chart-daily"):  # drawn by a deferred script
        drawn_js = f"window.Chart && !!Chart.getChart(document.getElementById('{chart}'))"
        # Polled from here: wait_for_function polls with eval in the page, which the CSP refuses.
        for _ in range(100):
            if await page.evaluate(drawn_js):
                break
            await asyncio.sleep(0.1)
        assert await page.evaluate(drawn_js), f"{chart} was not drawn within 10 s"
    drawn = await page.evaluate("Chart.getChart(document.getElementById('chart-providers')).data")
    assert drawn["labels"] == ["anthropic", "openai"]
    assert drawn["datasets"][0]["data"] == [1.05, 0.75]
    await snapshot(page, "17-spend")
