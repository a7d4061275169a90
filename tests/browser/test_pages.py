"""Every page in Chromium: no serious or critical accessibility problem (axe-core) in light and dark
mode, the styled 404, the phone-size navigation, and one money format in Python and JavaScript."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from providers.pricing import format_usd
from tests.browser.conftest import add_axe, serious_accessibility_problems, snapshot
from tests.conftest import GOOD_KEYS
from tests.providers.test_pricing import MONEY_CASES

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-passphrase-9"


@pytest.fixture
def cast(fake_openai, fake_anthropic):
    def create() -> dict:
        from accounts import membership
        from accounts.models import Membership, Team, User
        from audit import log
        from automations.models import Automation
        from gateway import keys
        from providers.base import TokenCount
        from providers.registry import registry
        from usage.models import Budget, Run
        from usage.records import record_usage

        team = Team.objects.create(name="Research")
        ada = User.objects.create_user("ada", "ada@example.com", PASSWORD, is_staff=True, current_team=team)
        bo = User.objects.create_user("bo", password=PASSWORD)
        Membership.objects.create(user=ada, team=team, role="admin")
        Membership.objects.create(user=bo, team=team, role="member")
        registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=team)
        registry.save(
            "anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=fake_anthropic.url, team=team
        )
        automation = Automation.objects.create(
            team=team, name="Summarize", prompt_template="Summarize: {text}"
        )
        record_usage("openai", "gpt-4o", TokenCount(100_000, 50_000), "run", team=team, user=ada)
        budget = Budget.objects.create(team=team, monthly_limit_usd=Decimal("0.5"))
        log.record(
            ada,
            "budget_changed",
            budget,
            team=team,
            before={"monthly_limit_usd": "1"},
            after={"monthly_limit_usd": "0.5"},
        )
        done = Run.objects.create(
            team=team,
            user=ada,
            automation=automation,
            model_requested="openai/gpt-4o",
            model_used="openai/gpt-4o",
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=100,
            status="completed",
            output="Hello.",
            input_tokens=5,
            output_tokens=2,
            cost_usd=Decimal("0.0000325"),
        )
        failed = Run.objects.create(
            team=team,
            user=ada,
            model_requested="openai/gpt-4o",
            messages=[],
            max_tokens=100,
            status="failed",
            error_message="OpenAI failed.",
            error_action="retry",
        )
        key = keys.create(team, "CI bot", created_by=ada).key
        invitation = membership.invite(team, "member", "", ada, link_for=lambda token: token)
        return {
            "automation": automation.pk,
            "run": done.uuid,
            "failed": failed.uuid,
            "key": key.pk,
            "invite": invitation.token,
        }

    return create


def pages(ids: dict) -> list[str]:
    a, run = ids["automation"], ids["run"]
    return [
        "/",
        "/playground/",
        "/automations/",
        f"/automations/{a}/",
        f"/automations/{a}/edit/",
        f"/automations/{a}/model/",
        "/automations/new/",
        f"/automations/{a}/fallback/",
        "/runs/",
        f"/runs/{run}/",
        f"/runs/{run}/record/",
        f"/runs/{ids['failed']}/again/",
        "/providers/settings/",
        "/providers/connect/",
        "/providers/connect/openai/",
        "/providers/connect/custom/",
        "/providers/openai/models/",
        "/providers/openai/edit/",
        "/providers/openai/delete/",
        "/budgets/",
        "/budget/",
        "/providers/openai/budget/",
        f"/settings/api-keys/{ids['key']}/budget/",
        "/fallback/",
        "/settings/api-keys/",
        "/settings/team/",
        "/settings/teams/",
        "/spend/",
        "/audit/",
        "/accounts/password/",
    ]


async def sign_in(page, username: str) -> None:
    await page.goto("/accounts/login/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).not_to_have_url(re.compile("/accounts/login/"))


async def test_every_page_passes_axe_then_the_404_page_phone_navigation_and_money_format(page, cast, hub_url):
    """One browser for the whole file (browser tests stay fast)."""
    ids = await sync_to_async(cast)()
    await add_axe(page.context)
    problems = []
    for url in ("/accounts/login/", f"/invite/{ids['invite']}/"):  # pages for people not signed in
        await page.goto(url)
        problems += await serious_accessibility_problems(page)
    await sign_in(page, "ada")
    for url in pages(ids):
        response = await page.goto(url)
        assert response.status == 200, url
        problems += await serious_accessibility_problems(page)
    await page.emulate_media(color_scheme="dark")
    for url in ("/", "/runs/", "/providers/settings/", "/spend/", "/audit/", "/settings/team/", "/budget/"):
        await page.goto(url)
        problems += await serious_accessibility_problems(page)
    await snapshot(page, "60-dark-mode-team")
    assert problems == []
    await page.emulate_media(color_scheme="light")
    await page.context.clear_cookies()
    await sign_in(page, "bo")
    await the_404_page_phone_navigation_and_money_format(page, hub_url)


async def the_404_page_phone_navigation_and_money_format(page, hub_url) -> None:
    response = await page.goto("/no/such/page/")
    assert response.status == 404
    await expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    await expect(page.get_by_role("navigation", name="Main")).to_be_visible()  # inside the app's layout
    await snapshot(page, "61-not-found")

    # One money format: the chart formatter writes every amount as the server does.
    await page.goto("/spend/")
    shown = await page.evaluate("(amounts) => amounts.map(LLMHub.usd)", [a for a, _ in MONEY_CASES])
    assert shown == [format_usd(Decimal(a)) for a, _ in MONEY_CASES]

    phone = await page.context.browser.new_context(base_url=hub_url, viewport={"width": 390, "height": 844})
    phone.set_default_timeout(10_000)
    await add_axe(phone)
    small = await phone.new_page()
    await sign_in(small, "ada")
    await small.goto("/spend/")
    menu = small.get_by_role("button", name="Menu")
    nav = small.get_by_role("navigation", name="Main")
    await expect(menu).to_have_attribute("aria-expanded", "false")
    await expect(nav).to_be_hidden()
    await menu.click()
    await expect(menu).to_have_attribute("aria-expanded", "true")
    await expect(nav.get_by_role("link", name="Spend")).to_have_attribute("aria-current", "page")
    width = await small.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing pushes the page sideways
    assert await serious_accessibility_problems(small) == []
    await snapshot(small, "62-phone-menu-open")
    await nav.get_by_role("link", name="Providers").click()
    await expect(small.get_by_role("heading", name="Providers")).to_be_visible()
    actions = small.get_by_role("button", name="Actions for OpenAI")
    sync = small.get_by_role("button", name="Sync models of OpenAI")
    await expect(sync).to_be_hidden()
    await actions.click()
    await expect(sync).to_be_visible()
    await snapshot(small, "63-phone-row-actions")
    await small.keyboard.press("Escape")
    await expect(sync).to_be_hidden()
    await phone.close()
