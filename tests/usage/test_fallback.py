"""Reliability: every fault ends a run in a clear state, retries wait as told, fallback takes over."""

from __future__ import annotations

import asyncio
import contextlib
import random
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from audit.models import AuditEntry
from llmhub.asgi import application
from providers.base import Delta, Message
from providers.registry import registry
from tests.conftest import BAD_KEY, GOOD_KEYS
from usage import fallback, runs
from usage.models import Budget, FallbackPolicy, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [Message("user", "Write about reliability.")]
HAIKU = "anthropic/claude-haiku-4-5"


@pytest.fixture(autouse=True)
def quick_retries(settings):
    settings.LLMHUB_RETRY_BASE_SECONDS = 0.001
    settings.LLMHUB_REQUEST_TIMEOUT = 1


@pytest.fixture
def providers(alpha, fake_openai, fake_anthropic):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=fake_anthropic.url, team=alpha)


@pytest.fixture
def policy(alpha, providers):
    return FallbackPolicy.objects.create(team=alpha, order=[HAIKU], retry_count=2)


async def start(alice, alpha, model="openai/gpt-4o-mini") -> Run:
    return await sync_to_async(runs.create_run)(alice, alpha, model, ASK, 200)


async def play(run: Run, ask=None) -> tuple[Run, list]:
    events = []
    async for event in runs.stream(run, ask=ask):
        events.append(event)
    return events[-1].run, events


async def test_a_rate_limit_is_waited_out_with_a_countdown_then_succeeds(
    alice, alpha, providers, fake_openai
):
    fake_openai.fail_next(
        429,
        body={"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}},
        headers={"retry-after": "1"},
    )
    run, events = await play(await start(alice, alpha))
    ticks = [e for e in events if isinstance(e, fallback.Waiting)]
    assert [t.message for t in ticks] == [
        "OpenAI rate limit hit. Retrying openai/gpt-4o-mini in 1 s (attempt 2 of 3)."
    ]
    assert run.status == Run.Status.COMPLETED and run.model_used == "openai/gpt-4o-mini"
    assert run.output == fake_openai.reply_text


async def test_server_errors_exhaust_the_retries_then_the_fallback_answers(
    alice, alpha, policy, fake_openai, fake_anthropic
):
    for _ in range(3):
        fake_openai.fail_next_as("server_error")
    run, events = await play(await start(alice, alpha))
    assert run.status == Run.Status.COMPLETED
    assert run.model_used == HAIKU and run.output == fake_anthropic.reply_text
    assert len([r for r in fake_openai.requests if r.path.endswith("/chat/completions")]) == 3
    assert run.attempts == [
        {
            "model": "openai/gpt-4o-mini",
            "error": "OpenAI is having trouble (HTTP 500). Try again in a moment.",
        }
    ]
    switch = await AuditEntry.objects.aget(action="fallback_triggered")
    assert switch.before == {"model": "openai/gpt-4o-mini"} and switch.after["model"] == HAIKU
    usage = await UsageRecord.objects.aget(run_id=str(run.uuid))
    assert (usage.provider_id, usage.model) == ("anthropic", "claude-haiku-4-5")


async def test_a_wrong_key_is_not_retried_and_says_what_to_do(alice, alpha, providers, fake_openai):
    await sync_to_async(registry.save)("openai", {"api_key": BAD_KEY})
    run, events = await play(await start(alice, alpha))
    assert run.status == Run.Status.FAILED and run.error_action == "re-enter-key"
    assert run.error_message == "Your OpenAI API key is invalid. Please check and try again."
    assert not any(isinstance(e, fallback.Waiting) for e in events)
    assert not await UsageRecord.objects.aexists()


async def test_a_read_timeout_is_retried(alice, alpha, providers, fake_openai):
    fake_openai.hang_next(5)
    run, events = await play(await start(alice, alpha))
    assert run.status == Run.Status.COMPLETED
    assert any(
        "did not answer within 1 second" in e.message for e in events if isinstance(e, fallback.Waiting)
    )


async def test_an_unreachable_provider_falls_back(alice, alpha, policy, fake_openai, fake_anthropic):
    fake_openai.stop()
    run, _ = await play(await start(alice, alpha))
    assert run.status == Run.Status.COMPLETED and run.model_used == HAIKU


async def test_a_stream_cut_before_any_text_falls_back(alice, alpha, policy, fake_openai):
    for _ in range(3):
        fake_openai.cut_next_stream(after=0)
    run, _ = await play(await start(alice, alpha))
    assert run.status == Run.Status.COMPLETED and run.model_used == HAIKU


async def test_a_stream_cut_after_text_keeps_it_charges_it_and_is_not_restarted(
    alice, alpha, policy, fake_openai, fake_anthropic
):
    fake_openai.cut_next_stream(after=4)
    run, events = await play(await start(alice, alpha))
    assert run.status == Run.Status.FAILED and run.error_action == "continue"
    assert run.error_message == "OpenAI stopped answering mid-response. The text so far is kept."
    assert run.output and run.output == "".join(e.text for e in events if isinstance(e, Delta))
    assert not [r for r in fake_anthropic.requests if r.path.endswith("/messages")]
    usage = await UsageRecord.objects.aget(run_id=str(run.uuid))
    assert usage.output_tokens > 0 and usage.input_tokens == run.estimated_input_tokens


async def test_a_malformed_sse_line_before_text_moves_on(alice, alpha, policy, fake_openai):
    fake_openai.reply_raw_next(b"data: {not json\n\n", content_type="text/event-stream")
    run, _ = await play(await start(alice, alpha))
    assert run.status == Run.Status.COMPLETED and run.model_used == HAIKU


async def test_a_web_page_instead_of_a_stream_is_never_a_success(alice, alpha, providers, fake_openai):
    fake_openai.reply_raw_next(b"<html>502 Bad Gateway</html>", content_type="text/html")
    run, _ = await play(await start(alice, alpha))
    assert run.status == Run.Status.FAILED and not run.output
    assert (
        run.error_message
        == "Unexpected response from OpenAI: it answered with a web page (text/html), not a stream."
    )
    assert not await UsageRecord.objects.aexists() and run.reserved_usd is None


async def test_a_web_page_instead_of_a_stream_moves_on_to_the_fallback(alice, alpha, policy, fake_openai):
    fake_openai.reply_raw_next(b"<html>Sign in to the proxy</html>", content_type="text/html")
    run, _ = await play(await start(alice, alpha))
    assert run.status == Run.Status.COMPLETED and run.model_used == HAIKU


async def test_when_every_model_fails_the_run_says_so(alice, alpha, policy, fake_openai, fake_anthropic):
    for _ in range(3):
        fake_openai.fail_next_as("overloaded")
        fake_anthropic.fail_next_as("overloaded")
    run, _ = await play(await start(alice, alpha))
    assert run.status == Run.Status.FAILED
    assert (
        run.error_message
        == "Anthropic is having trouble (HTTP 529). Try again in a moment. Every fallback model failed too."
    )
    assert [a["model"] for a in run.attempts] == ["openai/gpt-4o-mini", HAIKU]


async def test_a_fallback_its_budget_cannot_cover_is_skipped_with_a_message(
    alice, alpha, policy, fake_openai, anthropic_budget
):
    fake_openai.fail_next_as("quota_exceeded")
    run, _ = await play(await start(alice, alpha))
    assert run.status == Run.Status.FAILED
    assert run.attempts[1]["skipped"].startswith("Monthly Anthropic budget: $0.00 of $0.00 left")


@pytest.fixture
def anthropic_budget(providers):
    from providers.models import Provider

    return Budget.objects.create(
        provider=Provider.objects.get(pk="anthropic"), monthly_limit_usd=Decimal("0")
    )


async def test_soak_200_runs_with_random_faults_on_the_primary_all_succeed(alice, alpha, policy, fake_openai):
    random.seed(11)
    faults = [
        lambda: fake_openai.fail_next_as("server_error"),
        lambda: fake_openai.fail_next_as("overloaded"),
        lambda: fake_openai.fail_next(429, headers={"retry-after": "0"}),
        lambda: fake_openai.cut_next_stream(after=0),
        lambda: fake_openai.fail_next_as("invalid_key"),
        lambda: fake_openai.fail_next_as("quota_exceeded"),
        lambda: None,
    ]
    finished = []
    for _batch in range(20):
        pending = [await start(alice, alpha) for _ in range(10)]
        for _ in range(10):
            random.choice(faults)()
        finished += [run for run, _ in await asyncio.gather(*(play(run) for run in pending))]
    assert len(finished) == 200
    assert all(run.status == Run.Status.COMPLETED for run in finished), [
        r.error_message for r in finished if r.error_message
    ]
    assert await UsageRecord.objects.acount() == 200


def socket_headers(client) -> list[tuple[bytes, bytes]]:
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    return [(b"cookie", cookie), (b"origin", b"http://127.0.0.1"), (b"host", b"127.0.0.1")]


async def test_ask_mode_waits_and_switches_on_consent(alice, alpha, policy, fake_openai, alice_client):
    policy.ask_before_switching = True
    await policy.asave()
    fake_openai.fail_next_as("quota_exceeded")
    run = await start(alice, alpha)
    communicator = WebsocketCommunicator(
        application, f"/ws/runs/{run.uuid}/", headers=socket_headers(alice_client)
    )
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"action": "start"})
    frame = ""
    while "Switch to Claude Haiku 4.5" not in frame:
        frame = await communicator.receive_from(timeout=5)
    assert "OpenAI is failing: You&#x27;ve hit your OpenAI usage cap." in frame
    assert "Switch to Claude Haiku 4.5 (up to ~$" in frame
    assert await communicator.receive_nothing(timeout=0.3)  # the run waits
    await communicator.send_json_to({"action": "switch"})
    while "✓ Completed." not in frame:
        frame = await communicator.receive_from(timeout=5)
    assert "Answered by <code>anthropic/claude-haiku-4-5</code>" in frame
    await communicator.disconnect()


async def test_ask_mode_refusal_ends_the_run_cleanly(alice, alpha, policy, fake_openai, alice_client):
    policy.ask_before_switching = True
    await policy.asave()
    fake_openai.fail_next_as("quota_exceeded")
    run = await start(alice, alpha)
    communicator = WebsocketCommunicator(
        application, f"/ws/runs/{run.uuid}/", headers=socket_headers(alice_client)
    )
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"action": "start"})
    frame = ""
    while "Switch to" not in frame:
        frame = await communicator.receive_from(timeout=5)
    await communicator.send_json_to({"action": "stop"})
    while "Failed." not in frame:
        frame = await communicator.receive_from(timeout=5)
    assert "The run stopped: you chose not to switch." in frame
    run = await Run.objects.aget(pk=run.pk)
    assert run.status == Run.Status.FAILED and run.reserved_usd is None
    assert not await UsageRecord.objects.aexists()
    await communicator.disconnect()


async def test_non_interactive_callers_switch_as_configured(alice, alpha, policy, fake_openai):
    policy.ask_before_switching = True
    await policy.asave()
    fake_openai.fail_next_as("quota_exceeded")
    run, _ = await play(await start(alice, alpha), ask=None)
    assert run.status == Run.Status.COMPLETED and run.model_used == HAIKU


async def test_a_missing_model_suggests_a_cheaper_one_and_offers_the_picker(
    alice, alpha, providers, fake_openai
):
    fake_openai.fail_next_as("model_not_found")
    run, _ = await play(await start(alice, alpha, model="openai/gpt-4o"))
    assert run.status == Run.Status.FAILED and run.error_action == "pick-model"
    assert run.error_message == "gpt-4o is unavailable right now. Try GPT-4o mini instead?"


@pytest.fixture
def unanswered_port():
    """A listener whose accept queue is full: the kernel drops new connection attempts, so a
    client's connect times out (on loopback, with no traffic anywhere else)."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):
        filler = socket.socket()
        filler.setblocking(False)
        # A non-blocking connect in progress fills the queue all the same.
        with contextlib.suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for sock in [listener, *fillers]:
        sock.close()


async def test_a_connect_timeout_falls_back(alice, alpha, policy, unanswered_port):
    policy.retry_count = 0
    await policy.asave()
    key = {"api_key": GOOD_KEYS["openai"]}  # a key moves to another endpoint only when typed again
    await sync_to_async(registry.save)("openai", key, endpoint=f"http://127.0.0.1:{unanswered_port}/v1")
    run, _ = await play(await start(alice, alpha))
    assert run.status == Run.Status.COMPLETED and run.model_used == HAIKU
    assert run.attempts[0]["error"] == "OpenAI did not answer within 1 second. Try again."
