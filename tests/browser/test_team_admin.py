"""Running a team from the browser: an invited person signs up and is made admin; an account made
with a temporary password chooses its own at first sign-in."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from tests.browser.conftest import snapshot

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-passphrase-9"


@pytest.fixture
def team():
    def create():
        from accounts.models import Membership, Team, User

        research = Team.objects.create(name="Research")
        ada = User.objects.create_user("ada", password=PASSWORD)
        Membership.objects.create(user=ada, team=research, role="admin")

    return create


async def sign_in(page, username: str, password: str = PASSWORD) -> None:
    await page.goto("/accounts/login/")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def test_an_invited_person_joins_and_is_made_admin_and_another_gets_a_temporary_password(
    page, team, hub_url
):
    """One browser for the whole file: two people join Ada's team."""
    await sync_to_async(team)()
    await sign_in(page, "ada")
    await page.get_by_role("link", name="Team", exact=True).click()
    await expect(page.get_by_role("heading", name="Research: people")).to_be_visible()
    invite = page.locator("#invite")
    await invite.get_by_label("Email").fill("cy@example.com")
    await invite.get_by_role("button", name="Create invitation link").click()
    link = (await page.locator("#shown-once code").inner_text()).strip()
    assert re.fullmatch(rf"{hub_url}/invite/[\w-]+/", link)
    await expect(page.locator("#invitations")).to_contain_text("cy@example.com · Member")
    await snapshot(page, "70-team-invitation")

    newcomer = await page.context.browser.new_context(
        base_url=hub_url, viewport={"width": 1280, "height": 900}
    )
    newcomer.set_default_timeout(10_000)
    cy = await newcomer.new_page()
    await cy.goto(link)
    await expect(cy.get_by_role("heading", name="Join Research")).to_be_visible()
    await cy.get_by_label("Username").fill("cy")
    await cy.get_by_label("Password", exact=True).fill("cy's own passphrase 7")
    await cy.get_by_label("Password again").fill("cy's own passphrase 7")
    await cy.get_by_role("button", name="Create account and join").click()
    await expect(cy.get_by_text("Welcome to Research.")).to_be_visible()
    nav = cy.get_by_role("navigation", name="Main")
    await expect(nav.get_by_role("link", name="Runs")).to_be_visible()
    await expect(nav.get_by_role("link", name="Providers")).to_have_count(0)  # a member manages nothing

    await page.reload()
    await expect(page.locator("#invitations")).to_have_count(0)  # used up
    row = page.get_by_role("row", name=re.compile("^cy"))
    await row.get_by_label("Role of cy").select_option("admin")
    await row.get_by_role("button", name="Change role").click()
    await expect(page.get_by_text("cy is now team admin.")).to_be_visible()
    await cy.reload()
    await expect(nav.get_by_role("link", name="Providers")).to_be_visible()
    await expect(nav.get_by_role("link", name="Team")).to_be_visible()
    await snapshot(cy, "71-new-admin")

    await cy.goto(link)  # the link worked once
    await expect(cy.get_by_role("heading", name="This invitation link no longer works")).to_be_visible()
    await newcomer.close()

    # Someone without e-mail: an account with a temporary password, changed at first sign-in.
    await page.goto("/settings/team/")
    account = page.locator("#new-account")
    await account.get_by_label("Username").fill("dee")
    await account.get_by_role("button", name="Create account").click()
    temporary = (await page.locator("#shown-once code").inner_text()).strip()
    assert len(temporary) == 16

    other = await page.context.browser.new_context(base_url=hub_url)
    other.set_default_timeout(10_000)
    dee = await other.new_page()
    await sign_in(dee, "dee", temporary)
    await expect(dee.get_by_role("heading", name="Choose your own password")).to_be_visible()
    await dee.goto("/spend/")  # nothing else opens first
    await expect(dee.get_by_role("heading", name="Choose your own password")).to_be_visible()
    await dee.get_by_label("New password", exact=True).fill("dee's own passphrase 3")
    await dee.get_by_label("New password confirmation").fill("dee's own passphrase 3")
    await dee.get_by_role("button", name="Save password").click()
    await expect(dee.get_by_text("Password changed.")).to_be_visible()
    await dee.goto("/spend/")
    await expect(dee.get_by_role("heading", name="Spend", exact=True)).to_be_visible()
    await other.close()
