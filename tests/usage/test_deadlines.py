"""Deadlines: a run has a total time limit, and an idle limit that only new text resets."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from providers.base import Delta, Message
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.fakes.server import sse
from usage import runs
from usage.events import Ended
from usage.models import Budget, FallbackPolicy, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [Message("user", "Take your time.")]


@pytest.fixture(autouse=True)
def short_limits(settings):
    settings.LLMHUB_IDLE_TIMEOUT = 0.6
    settings.LLMHUB_RUN_TIME_LIMIT = 3
    settings.LLMHUB_RETRY_BASE_SECONDS = 0.01


@pytest.fixture
def openai(alpha, fake_openai):
    FallbackPolicy.objects.create(team=alpha, enabled=False, retry_count=1)
    Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("1"))
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)


async def play(alice, alpha) -> tuple[Run, str]:
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o", ASK, 100)
    text = ""
    async for event in runs.stream(run):
        if isinstance(event, Delta):
            text += event.text
        elif isinstance(event, Ended):
            run = event.run
    return run, text


def stalls(fake, how: str) -> None:
    if how == "keep-alive comments":
        fake.keep_alives_forever_next(every=0.05)
    elif how == "empty chunks":
        fake.empty_chunks_forever_next(every=0.05)
    else:
        fake.trickle_next(every=0.1)


@pytest.mark.parametrize("how", ["keep-alive comments", "empty chunks", "a byte at a time"])
async def test_an_upstream_that_sends_no_text_is_stopped_by_the_idle_limit(
    alice, alpha, openai, fake_openai, how
):
    for _ in range(2):  # the attempt and its one retry
        stalls(fake_openai, how)
    run, text = await play(alice, alpha)
    assert run.status == Run.Status.FAILED and text == ""
    assert run.error_message == "OpenAI sent no text for 1 second; the attempt was stopped."
    assert len([r for r in fake_openai.requests if r.path.endswith("/chat/completions")]) == 2
    assert run.reserved_usd is None and not await UsageRecord.objects.aexists()


async def test_a_stall_after_some_text_keeps_and_charges_the_text(alice, alpha, openai, fake_openai):
    hello = sse({"choices": [{"index": 0, "delta": {"content": "Hello, "}}]})
    fake_openai.stream_raw_next(itertools.chain([hello], itertools.repeat(b": ping\n\n")), every=0.05)
    run, text = await play(alice, alpha)
    assert text == "Hello, " == run.output and run.status == Run.Status.FAILED
    assert (
        run.error_message
        == "OpenAI sent no text for 1 second; the attempt was stopped. The text so far is kept."
    )
    assert (await UsageRecord.objects.aget(run_id=str(run.uuid))).output_tokens == run.output_tokens > 0


async def test_a_run_that_goes_on_too_long_is_stopped_at_its_time_limit(alice, alpha, openai, fake_openai):
    fake_openai.endless = True
    fake_openai.chunk_delay = 0.1  # steady text: the idle limit never fires, the total one does
    run, text = await play(alice, alpha)
    assert run.status == Run.Status.FAILED and text and run.output == text
    assert run.error_message == "The run reached its time limit of 3 seconds. The text so far is kept."
    assert run.reserved_usd is None
    assert (await UsageRecord.objects.aget(run_id=str(run.uuid))).output_tokens == run.output_tokens > 0


async def test_the_time_limit_covers_retries_too(alice, alpha, openai, fake_openai, settings):
    settings.LLMHUB_RUN_TIME_LIMIT = 1
    settings.LLMHUB_IDLE_TIMEOUT = 5
    await FallbackPolicy.objects.filter(team=alpha).aupdate(retry_count=5)
    for _ in range(6):
        fake_openai.keep_alives_forever_next(every=0.05)
    run, _ = await play(alice, alpha)
    assert run.error_message == "The run reached its time limit of 1 second."
    assert len([r for r in fake_openai.requests if r.path.endswith("/chat/completions")]) == 1


async def test_an_html_answer_is_an_unexpected_response_not_a_broken_stream(
    alice, alpha, openai, fake_openai
):
    fake_openai.reply_raw_next(
        b"<!doctype html><title>Gateway</title>", content_type="text/html; charset=utf-8"
    )
    run, _ = await play(alice, alpha)
    assert (
        run.error_message
        == "Unexpected response from OpenAI: it answered with a web page (text/html), not a stream."
    )
    assert "mid-response" not in run.error_message
