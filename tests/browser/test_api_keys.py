"""Settings → API keys in a real browser: a key is created with its own budget and models, shown once,
used by the official SDK, then revoked."""

from __future__ import annotations

import openai
import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from tests.browser.conftest import snapshot
from tests.browser.test_runs import sign_in
from tests.conftest import GOOD_KEYS

pytestmark = pytest.mark.django_db(transaction=True)


def admin_with_openai(fake_url: str) -> None:
    from accounts.models import Membership, Team, User
    from providers.registry import registry

    team = Team.objects.create(name="Research")
    user = User.objects.create_user("ada", password="a-long-passphrase-9")
    Membership.objects.create(user=user, team=team, role="admin")
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_url, team=team)


async def test_create_use_and_revoke_an_api_key(page, hub_url, fake_openai):
    await sync_to_async(admin_with_openai)(fake_openai.url)
    await sign_in(page)
    await page.get_by_role("link", name="API keys").click()
    await expect(page.get_by_role("heading", name="API keys", exact=True)).to_be_visible()
    await expect(page.get_by_text("No API key yet.")).to_be_visible()

    await page.get_by_label("Name").fill("CI summarizer")
    search = page.get_by_label("Find a model")
    await search.fill("4o-mini")  # the picker narrows as one types, grouped by provider
    await expect(page.locator("#model-picker label:visible")).to_have_count(1)
    await page.get_by_label("openai/gpt-4o-mini").check()
    await search.fill("")
    await page.get_by_label("Daily budget (USD)").fill("5")
    await page.get_by_role("button", name="Create key").click()

    shown = page.locator("#new-key code.secret-once")
    secret = (await shown.inner_text()).strip()
    assert secret.startswith("llmh-") and len(secret) > 30
    await expect(page.locator("#new-key pre")).to_contain_text(f'api_key="{secret}"')
    row = page.get_by_role("row", name="CI summarizer")
    await expect(row).to_contain_text(f"llmh-...{secret[-4:]}")
    await expect(row).to_contain_text("openai/gpt-4o-mini")
    await expect(row).to_contain_text("$5.00/day")
    await expect(row).to_contain_text("never")
    await snapshot(page, "50-api-key-created")

    client = openai.AsyncOpenAI(base_url=f"{hub_url}/v1", api_key=secret, max_retries=0, timeout=20)
    answer = await client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}], max_tokens=20
    )
    assert answer.choices[0].message.content == fake_openai.reply_text
    with pytest.raises(openai.PermissionDeniedError, match="may not use openai/gpt-4o"):
        await client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "Hello"}], max_tokens=20
        )

    await page.reload()
    await expect(page.locator("#new-key")).to_have_count(0)  # shown once, never again
    assert secret not in await page.content()
    await expect(row).not_to_contain_text("never")  # last used: just now

    page.once("dialog", lambda dialog: dialog.accept())
    await row.get_by_role("button", name="Revoke").click()
    await expect(page.get_by_text("API key CI summarizer")).to_contain_text("is revoked")
    await expect(row).to_contain_text("revoked")
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}], max_tokens=20
        )
    await snapshot(page, "51-api-key-revoked")


def create_key(name: str) -> None:
    from accounts.models import Team
    from gateway import keys

    keys.create(Team.objects.get(name="Research"), name)


def limit_changes() -> list[tuple]:
    from audit.models import AuditEntry

    return [
        (e.actor_name, e.before, e.after) for e in AuditEntry.objects.filter(action="rate_limits_changed")
    ]


async def test_a_keys_rate_limits_are_set_in_its_row_and_a_wrong_value_is_named(page, hub_url, fake_openai):
    await sync_to_async(admin_with_openai)(fake_openai.url)
    await sync_to_async(create_key)("nightly")
    await sign_in(page)
    await page.goto("/settings/api-keys/")
    row = page.get_by_role("row", name="nightly")
    limits = row.locator("summary")
    await expect(limits).to_contain_text("none")
    await limits.click()
    await row.get_by_label("Requests per minute").fill("-2")
    await row.get_by_label("Tokens per minute").fill("40000")
    await row.get_by_role("button", name="Save limits").click()
    await expect(row.get_by_role("alert")).to_contain_text("A limit cannot be negative")
    await expect(row.get_by_label("Tokens per minute")).to_have_value("40000")  # what was typed stays
    assert await sync_to_async(limit_changes)() == []

    await row.get_by_label("Requests per minute").fill("30")
    await row.get_by_role("button", name="Save limits").click()
    await expect(page.get_by_text("Rate limits of nightly")).to_contain_text("saved")
    await expect(limits).to_contain_text("30 RPM · 40,000 TPM")
    assert await sync_to_async(limit_changes)() == [
        ("ada", {"rpm": None, "tpm": None}, {"rpm": 30, "tpm": 40000})
    ]
    await snapshot(page, "52-api-key-rate-limits")
