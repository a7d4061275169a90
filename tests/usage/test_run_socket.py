"""Runs over the websocket: stream, cancel, closed tab, and who may connect."""

from __future__ import annotations

import asyncio
import html
import re
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from accounts.models import Team
from audit.models import AuditEntry
from llmhub.asgi import application
from providers.base import Message
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage import runs, tokens
from usage.models import Budget, FallbackPolicy, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://127.0.0.1")
HOST = (b"host", b"127.0.0.1")


def cookie(client) -> tuple[bytes, bytes]:
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


@pytest.fixture
def alice_run(alice, alpha, fake_openai):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    return runs.create_run(alice, alpha, "openai/gpt-4o-mini", [Message("user", "Tell me a story")], 500)


async def connect(run: Run, *headers) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, f"/ws/runs/{run.uuid}/", headers=[HOST, *headers])
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def frames_until(communicator, text: str, limit: int = 2000) -> list[str]:
    frames = []
    for _ in range(limit):
        frames.append(await communicator.receive_from(timeout=10))
        if text in frames[-1]:
            return frames
    raise AssertionError(f"{text!r} never arrived")


async def test_it_streams_a_run_and_records_its_usage_before_saying_finished(
    alice_run, alice_client, fake_openai
):
    communicator = await connect(alice_run, cookie(alice_client), ORIGIN)
    await communicator.send_json_to({"action": "start", "HEADERS": {}})
    frames = await frames_until(communicator, "✓ Completed.")
    deltas = [f for f in frames if 'hx-swap-oob="beforeend"' in f]
    assert len(deltas) > 3
    assert all(f'id="run-{alice_run.uuid}-output"' in f for f in deltas)
    assert "Streaming from openai/gpt-4o-mini" in frames[0]
    run = await Run.objects.aget(pk=alice_run.pk)
    assert run.status == Run.Status.COMPLETED and run.output == fake_openai.reply_text
    usage = await UsageRecord.objects.aget(run_id=str(run.uuid))
    assert (usage.input_tokens, usage.output_tokens) == (run.input_tokens, run.output_tokens)
    assert usage.cost_usd == run.cost_usd > 0
    assert f"{run.output_tokens} output tokens" in frames[-1]
    await communicator.disconnect()


async def test_text_is_escaped_in_frames(alice_run, alice_client, fake_openai):
    fake_openai.reply_text = "<script>alert(1)</script> done"
    communicator = await connect(alice_run, cookie(alice_client), ORIGIN)
    await communicator.send_json_to({"action": "start"})
    frames = await frames_until(communicator, "✓ Completed.")
    assert "<script>" not in "".join(frames) and "&lt;script&gt;" in "".join(frames)
    await communicator.disconnect()


async def test_cancel_stops_upstream_keeps_the_text_and_charges_what_was_used(
    alice_run, alice_client, fake_openai
):
    fake_openai.reply_text = "word " * 300
    fake_openai.chunk_delay = 0.02
    communicator = await connect(alice_run, cookie(alice_client), ORIGIN)
    await communicator.send_json_to({"action": "start"})
    await frames_until(communicator, "beforeend")
    for _ in range(4):
        await communicator.receive_from(timeout=5)
    await communicator.send_json_to({"action": "cancel"})
    frames = await frames_until(communicator, "Cancelled by alice.")
    assert await asyncio.to_thread(fake_openai.client_disconnected.wait, 5)
    run = await Run.objects.aget(pk=alice_run.pk)
    assert run.status == Run.Status.CANCELLED
    assert 0 < len(run.output) < len(fake_openai.reply_text)
    assert run.output_tokens >= 4 and run.input_tokens == run.estimated_input_tokens
    usage = await UsageRecord.objects.aget(run_id=str(run.uuid))
    assert usage.output_tokens == run.output_tokens and usage.cost_usd > 0
    assert "The text so far is kept." in frames[-1]
    await communicator.disconnect()


async def test_a_closed_tab_cancels_the_run_and_records_usage(alice_run, alice_client, fake_openai):
    fake_openai.reply_text = "word " * 300
    fake_openai.chunk_delay = 0.02
    communicator = await connect(alice_run, cookie(alice_client), ORIGIN)
    await communicator.send_json_to({"action": "start"})
    await frames_until(communicator, "beforeend")
    await communicator.disconnect()
    assert await asyncio.to_thread(fake_openai.client_disconnected.wait, 5)
    run = await Run.objects.aget(pk=alice_run.pk)
    assert run.status == Run.Status.CANCELLED and run.output
    assert await UsageRecord.objects.filter(run_id=str(run.uuid)).aexists()


async def test_a_failed_run_explains_itself_and_charges_nothing_the_provider_refused(
    alice_run, alice_client, fake_openai
):
    fake_openai.fail_next_as("quota_exceeded")
    communicator = await connect(alice_run, cookie(alice_client), ORIGIN)
    await communicator.send_json_to({"action": "start"})
    frames = await frames_until(communicator, "Failed.")
    assert "You&#x27;ve hit your OpenAI usage cap." in frames[-1]
    assert not await UsageRecord.objects.aexists()
    await communicator.disconnect()


async def test_a_run_starts_only_once(alice_run, alice_client, fake_openai):
    communicator = await connect(alice_run, cookie(alice_client), ORIGIN)
    await communicator.send_json_to({"action": "start"})
    await frames_until(communicator, "✓ Completed.")
    await communicator.send_json_to({"action": "start"})
    assert await communicator.receive_nothing(timeout=0.3)
    assert await UsageRecord.objects.acount() == 1
    await communicator.disconnect()


async def test_bob_from_the_same_team_may_watch_when_the_team_shows_runs(alice_run, alpha, bob_client):
    alpha.run_visibility = alpha.RunVisibility.TEAM
    await alpha.asave()
    communicator = await connect(alice_run, cookie(bob_client), ORIGIN)
    await communicator.disconnect()


@pytest.mark.parametrize(
    "who",
    ["another team", "no session", "wrong origin", "another port", "another scheme", "no origin"],
)
async def test_it_refuses_the_wrong_people_and_places(alice_run, alice_client, charlie_client, who):
    headers = {
        "another team": [cookie(charlie_client), ORIGIN, HOST],
        "no session": [ORIGIN, HOST],
        "wrong origin": [cookie(alice_client), (b"origin", b"https://evil.example"), HOST],
        # Another service on the hub's host (another port or scheme) is another origin.
        "another port": [cookie(alice_client), (b"origin", b"http://127.0.0.1:8080"), HOST],
        "another scheme": [cookie(alice_client), (b"origin", b"https://127.0.0.1"), HOST],
        "no origin": [cookie(alice_client), HOST],
    }[who]
    communicator = WebsocketCommunicator(application, f"/ws/runs/{alice_run.uuid}/", headers=headers)
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()
    assert (await Run.objects.aget(pk=alice_run.pk)).status == Run.Status.PENDING


async def test_cancel_from_another_tab_stops_the_run(alice_run, alice_client, fake_openai):
    fake_openai.reply_text = "word " * 300
    fake_openai.chunk_delay = 0.02
    first = await connect(alice_run, cookie(alice_client), ORIGIN)
    second = await connect(alice_run, cookie(alice_client), ORIGIN)
    await first.send_json_to({"action": "start"})
    await frames_until(first, "beforeend")
    await second.send_json_to({"action": "cancel"})
    frames = await frames_until(first, "Cancelled by alice.")
    assert "The text so far is kept." in frames[-1]
    run = await Run.objects.aget(pk=alice_run.pk)
    assert run.status == Run.Status.CANCELLED and 0 < len(run.output) < len(fake_openai.reply_text)
    assert (await UsageRecord.objects.aget(run_id=str(run.uuid))).output_tokens == run.output_tokens
    for communicator in (first, second):
        await communicator.disconnect()


async def test_a_member_may_watch_but_not_cancel_anothers_run(
    alice_run, alice_client, bob_client, fake_openai
):
    team = alice_run.team
    team.run_visibility = Team.RunVisibility.ALL  # members see each other's runs (issue 13's setting)
    await team.asave(update_fields=["run_visibility"])
    fake_openai.reply_text = "word " * 40
    fake_openai.chunk_delay = 0.02
    alices = await connect(alice_run, cookie(alice_client), ORIGIN)
    bobs = await connect(alice_run, cookie(bob_client), ORIGIN)
    await alices.send_json_to({"action": "start"})
    await frames_until(alices, "beforeend")
    await bobs.send_json_to({"action": "cancel"})
    await frames_until(alices, "✓ Completed.")
    assert (await Run.objects.aget(pk=alice_run.pk)).status == Run.Status.COMPLETED
    for communicator in (alices, bobs):
        await communicator.disconnect()


async def test_a_team_admin_may_cancel_a_members_run(alpha, bob, bob_client, alice_client, fake_openai):
    await sync_to_async(registry.save)(
        "openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha
    )
    run = await sync_to_async(runs.create_run)(bob, alpha, "openai/gpt-4o-mini", [Message("user", "Go")], 500)
    fake_openai.reply_text = "word " * 300
    fake_openai.chunk_delay = 0.02
    bobs = await connect(run, cookie(bob_client), ORIGIN)
    alices = await connect(run, cookie(alice_client), ORIGIN)
    await bobs.send_json_to({"action": "start"})
    await frames_until(bobs, "beforeend")
    await alices.send_json_to({"action": "cancel"})
    await frames_until(bobs, "Cancelled by alice.")
    for communicator in (alices, bobs):
        await communicator.disconnect()


async def test_the_socket_never_receives_text_past_the_cap(alice, alpha, alice_client, fake_openai):
    await sync_to_async(registry.save)(
        "openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha
    )
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o", [Message("user", "Go")], 40)
    fake_openai.endless = True
    communicator = await connect(run, cookie(alice_client), ORIGIN)
    await communicator.send_json_to({"action": "start"})
    frames = await frames_until(communicator, "✓ Completed.")
    text = html.unescape("".join(re.sub(r"<[^>]+>", "", f) for f in frames if 'hx-swap-oob="beforeend"' in f))
    assert tokens.count_text(text, "gpt-4o", "openai") == 40
    assert "Stopped at the cap of 40 output tokens." in frames[-1]
    await communicator.disconnect()


async def test_start_falls_back_after_a_budget_refusal(
    alice, alpha, alice_client, fake_openai, fake_anthropic
):
    openai = await sync_to_async(registry.save)(
        "openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha
    )
    await sync_to_async(registry.save)(
        "anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=fake_anthropic.url, team=alpha
    )
    await Budget.objects.acreate(team=alpha, provider=openai, monthly_limit_usd=Decimal("0"))
    await FallbackPolicy.objects.acreate(team=alpha, order=["anthropic/claude-haiku-4-5"])
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o", [Message("user", "Go")], 50)
    communicator = await connect(run, cookie(alice_client), ORIGIN)
    await communicator.send_json_to({"action": "start"})
    frames = await frames_until(communicator, "✓ Completed.")
    assert "Answered by <code>anthropic/claude-haiku-4-5</code>" in frames[-1]
    switch = await AuditEntry.objects.aget(action="fallback_triggered")
    assert switch.after["reason"].startswith("Monthly Alpha on OpenAI budget: $0.00 of $0.00 left")
    await communicator.disconnect()


async def test_a_failure_of_the_hub_itself_ends_the_run_with_an_error_frame(
    alice_run, alice_client, alpha, caplog
):
    await FallbackPolicy.objects.acreate(team=alpha, order=[42])  # a row no form would save
    communicator = await connect(alice_run, cookie(alice_client), ORIGIN)
    await communicator.send_json_to({"action": "start"})
    frames = await frames_until(communicator, "Failed.")
    assert "The hub failed while running this (the error is logged)." in frames[-1]
    assert "Retry" in frames[-1]
    run = await Run.objects.aget(pk=alice_run.pk)
    assert run.status == Run.Status.FAILED and run.reserved_usd is None and run.reservation_expires_at is None
    assert "failed inside the hub" in caplog.text and "AttributeError" in caplog.text
    await communicator.disconnect()
