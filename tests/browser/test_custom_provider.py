"""A custom provider defined, connected and run entirely in the browser."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from tests.browser.conftest import snapshot
from tests.browser.test_runs import sign_in
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "vllm-local-key-000000000000Qz7"


@pytest.fixture
def fake_vllm():
    fake = FakeOpenAI(api_keys={KEY})
    fake.models = ["llama-3.1-8b-instruct"]
    fake.reply_text = " ".join(f"token{n}" for n in range(40))
    fake.chunk_delay = 0.02
    fake.start()
    yield fake
    fake.stop()


def admin_without_providers():
    from accounts.models import Membership, Team, User

    team = Team.objects.create(name="Research")
    user = User.objects.create_user("ada", password="a-long-passphrase-9")
    Membership.objects.create(user=user, team=team, role="admin")


async def test_define_connect_and_run_a_custom_provider(page, fake_vllm):
    await sync_to_async(admin_without_providers)()
    await sign_in(page)
    await expect(page.get_by_role("heading", name="Connect your LLM provider")).to_be_visible()
    await page.get_by_role("link", name="Define a custom provider").click()

    await page.get_by_label("Name").fill("Office vLLM")
    await page.get_by_label("Endpoint").fill(fake_vllm.url)
    await page.get_by_label("Models").fill("llama-3.1-8b-instruct 131072 8192 0.10 0.20\nbroken line")
    await page.get_by_role("button", name="Continue: connect it").click()
    await expect(page.get_by_text("Line 2: write the model id")).to_be_visible()
    await expect(page.get_by_label("Models")).to_have_value(
        "llama-3.1-8b-instruct 131072 8192 0.10 0.20\nbroken line"
    )
    await page.get_by_label("Models").fill("llama-3.1-8b-instruct 131072 8192 0.10 0.20")
    await snapshot(page, "40-custom-provider-defined")
    await page.get_by_role("button", name="Continue: connect it").click()

    await expect(page.get_by_role("heading", name="Enter your Office vLLM API key")).to_be_visible()
    await page.get_by_label("API key").fill(KEY)
    await page.get_by_role("button", name="Test connection").click()
    await expect(page.get_by_text("✓ Connected: Office vLLM accepted the key.")).to_be_visible()
    await page.get_by_role("button", name="Save and choose a model").click()
    await expect(page.get_by_text("$0.10")).to_be_visible()
    await page.get_by_role("button", name="Use this model for llama-3.1-8b-instruct").click()
    await expect(page.get_by_text("office-vllm/llama-3.1-8b-instruct").first).to_be_visible()

    await page.goto("/playground/")
    await page.get_by_label("Model").select_option("office-vllm/llama-3.1-8b-instruct")
    await page.get_by_label("Message").fill("Say something.")
    await page.get_by_role("button", name="Show the price").click()
    await expect(page.locator("[id$='-cost']")).to_contain_text("Estimated $")
    await page.get_by_role("button", name="Start run").click()
    await expect(page.get_by_text("✓ Completed.")).to_be_visible()
    await expect(page.locator("pre.output")).to_have_text(fake_vllm.reply_text)
    await snapshot(page, "41-custom-provider-run")
