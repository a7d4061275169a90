"""Who spent what, on which model, when: the requests log, the spend page and the audit log,
filtered and paged in Chromium."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from tests.browser.conftest import snapshot
from tests.conftest import GOOD_KEYS

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-passphrase-9"


@pytest.fixture
def history():
    def create():
        from django.utils import timezone

        from accounts.models import Membership, Team, User
        from audit import log
        from gateway import keys
        from providers.base import TokenCount
        from providers.registry import registry
        from usage.models import Run
        from usage.records import record_usage

        team = Team.objects.create(name="Research")
        ada = User.objects.create_user("ada", password=PASSWORD)
        bo = User.objects.create_user("bo", password=PASSWORD)
        Membership.objects.create(user=ada, team=team, role="admin")
        Membership.objects.create(user=bo, team=team, role="member")
        registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, team=team)
        registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]}, team=team)
        key = keys.create(team, "Nightly digest", created_by=ada).key
        log.record(
            ada,
            "role_changed",
            bo,
            team=team,
            before={"user": "bo", "role": "admin"},
            after={"user": "bo", "role": "member"},
        )
        now = timezone.now()

        def run(user, used, minutes, **fields):
            started = now - timedelta(minutes=minutes)
            made = Run.objects.create(
                team=team,
                user=user,
                model_requested=fields.pop("requested", used),
                model_used=used,
                messages=[{"role": "user", "content": fields.pop("prompt", "Summarize the week.")}],
                max_tokens=200,
                status=fields.pop("status", "completed"),
                output=fields.pop("output", "A fine week."),
                input_tokens=fields.pop("input_tokens", 1200),
                output_tokens=fields.pop("output_tokens", 300),
                cost_usd=fields.pop("cost", Decimal("0.0006")),
                started_at=started,
                first_token_at=started + timedelta(milliseconds=350),
                finished_at=started + timedelta(seconds=2),
                **fields,
            )
            Run.objects.filter(pk=made.pk).update(created_at=started)

        for n in range(30):
            run(ada, "openai/gpt-4o-mini", n + 10)
            record_usage("openai", "gpt-4o-mini", TokenCount(1200, 300), "run", team=team, user=ada)
        run(
            bo,
            "anthropic/claude-sonnet-4-5",
            5,
            requested="openai/gpt-4o",
            status="failed",
            cost=None,
            prompt="Draft the board memo.",
            input_tokens=None,
            output_tokens=None,
            output="",
            error_message="Anthropic is having trouble (HTTP 529).",
            attempts=[{"model": "openai/gpt-4o", "error": "OpenAI rate limit hit."}],
        )
        run(None, "anthropic/claude-sonnet-4-5", 3, api_key=key, cost=Decimal("0.0081"))
        record_usage("anthropic", "claude-sonnet-4-5", TokenCount(1200, 300), "api", team=team, api_key=key)
        embedding = {"kind": "embeddings", "api_key": key, "output": "", "output_tokens": 0}
        run(None, "openai/text-embedding-3-small", 60, cost=Decimal("0.00002"), **embedding)
        record_usage(
            "openai",
            "text-embedding-3-small",
            TokenCount(1000, 0),
            "api",
            team=team,
            api_key=key,
            kind="embeddings",
        )

    return create


async def test_the_requests_log_spend_and_audit_answer_who_spent_what_when(page, history):
    await sync_to_async(history)()
    await page.goto("/accounts/login/")
    await page.get_by_label("Username").fill("ada")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    nav = page.get_by_role("navigation", name="Main")

    # The requests log: every run and API request, filtered, and one run's record.
    await nav.get_by_role("link", name="Runs", exact=True).click()
    log = page.locator("#run-log tbody tr")
    await expect(log).to_have_count(33)
    await expect(log.first).to_contain_text("API key Nightly digest")
    await expect(log.first).to_contain_text("0.35 s")
    filters = page.locator("#run-filters")
    await filters.get_by_label("Status").select_option("failed")
    await filters.get_by_role("button", name="Apply").click()
    await expect(log).to_have_count(1)
    await expect(log).to_contain_text("bo")
    await expect(log).to_contain_text("asked for openai/gpt-4o")
    await snapshot(page, "80-runs-filtered")
    await log.get_by_role("link").click()
    await expect(page.locator("#run-attempts")).to_contain_text(
        "openai/gpt-4o: failed, OpenAI rate limit hit."
    )
    await expect(page.locator("#run-error")).to_contain_text("Anthropic is having trouble (HTTP 529).")
    await expect(page.get_by_text("Draft the board memo.")).to_be_visible()
    await snapshot(page, "81-run-record")
    await page.go_back()
    await filters.get_by_label("Status").select_option("")
    await filters.get_by_label("Person").select_option(label="ada")
    await filters.get_by_role("button", name="Apply").click()
    await expect(log).to_have_count(30)

    # Spend: one filter for totals, runs and CSV, on the model used; dropdowns keep every option.
    await nav.get_by_role("link", name="Spend", exact=True).click()
    spend = page.locator("#spend-filters")
    await spend.get_by_label("Model used").select_option("openai/gpt-4o-mini")
    await spend.get_by_role("button", name="Apply").click()
    await expect(page.locator("#spend-totals")).to_contain_text("30 runs")
    rows = page.locator("#spend-runs tbody tr")
    await expect(rows).to_have_count(25)
    offered = await spend.get_by_label("Model used").inner_text()
    assert "claude-sonnet-4-5" in offered and "gpt-4o-mini" in offered  # every option stays
    assert "anthropic" in await spend.get_by_label("Provider").inner_text()  # still offered
    await page.get_by_role("link", name="Older").click()
    await expect(rows).to_have_count(5)
    await expect(page.get_by_text("Page 2 of 2")).to_be_visible()
    assert re.search(r"model=openai%2Fgpt-4o-mini", page.url)
    await snapshot(page, "82-spend-page-2")
    await spend.get_by_label("Model used").select_option("anthropic/claude-sonnet-4-5")
    await spend.get_by_role("button", name="Apply").click()
    await expect(page.locator("#spend-totals")).to_contain_text("1 run,")  # the one that was charged
    await expect(rows).to_have_count(2)  # and the failed one, which Claude answered last
    await expect(rows.first).to_contain_text("API key Nightly digest")
    await expect(rows.last).to_contain_text("not charged")
    # The kind of call: embeddings alone, then chat alone.
    await spend.get_by_label("Model used").select_option("")
    await spend.get_by_label("Calls").select_option(label="Embeddings")
    await spend.get_by_role("button", name="Apply").click()
    await expect(page.locator("#spend-totals")).to_contain_text("1 run,")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text("openai/text-embedding-3-small")
    await spend.get_by_label("Calls").select_option(label="Chat")
    await spend.get_by_role("button", name="Apply").click()
    await expect(page.locator("#spend-totals")).to_contain_text("31 runs")
    await expect(page.locator("#spend-runs")).not_to_contain_text("text-embedding")

    # The audit log, filtered by what happened and who did it.
    await nav.get_by_role("link", name="Audit", exact=True).click()
    audit = page.locator("#audit-filters")
    entries = page.locator("#audit-entries tbody tr")
    await expect(entries).to_have_count(2)
    await audit.get_by_label("What").select_option(label="Role changed")
    await audit.get_by_role("button", name="Apply").click()
    await expect(entries).to_have_count(1)
    await expect(entries).to_contain_text("Team admin → Member")
    await expect(entries).to_contain_text("Person bo")
    await audit.get_by_label("What").select_option("")
    await audit.get_by_label("Object").select_option(label="API key")
    await audit.get_by_role("button", name="Apply").click()
    await expect(entries).to_have_count(1)
    await expect(entries).to_contain_text("API key created")
    await snapshot(page, "83-audit-filtered")
