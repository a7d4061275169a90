"""The output cap: enforced before text is relayed, reserved in full, and never charged past,
whatever a broken upstream streams or reports."""

from __future__ import annotations

import asyncio
import itertools
import re
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.core import mail

from audit.models import AuditEntry
from providers.base import Delta, Message, TokenCount
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.fakes.server import huge_line, sse
from usage import runs, tokens
from usage.ceiling import Limits, OutputCeiling, charge
from usage.events import Ended, Started
from usage.models import Budget, Run, UsageRecord

ASK = [Message("user", "Write at length about budgets.")]


# ---- the ceiling on its own


def test_pieces_that_count_high_alone_are_not_cut_early():
    ceiling = OutputCeiling(500, "gpt-4o", "openai")
    delivered = "".join(ceiling.admit(piece) for piece in ["word "] * 499 + ["word"])
    assert delivered == "word " * 499 + "word" and not ceiling.exceeded
    assert ceiling.count() == 500


def test_a_stream_past_the_cap_is_cut_token_exactly():
    ceiling = OutputCeiling(50, "gpt-4o", "openai")
    delivered = "".join(ceiling.admit(piece) for piece in ["word "] * 400)
    assert ceiling.exceeded and tokens.count_text(delivered, "gpt-4o", "openai") == 50
    assert ceiling.admit("more") == ""  # nothing after the cap


def test_counting_stays_incremental_far_from_the_cap():
    ceiling = OutputCeiling(5000, "gpt-4o", "openai")
    for piece in ["word "] * 6000:
        ceiling.admit(piece)
    assert ceiling.exceeded and ceiling.count() == 5000
    assert ceiling.whole_counts <= 20  # a few whole counts as it nears the cap, not one per piece


def test_one_giant_piece_is_cut_at_the_cap():
    ceiling = OutputCeiling(100, "gpt-4o", "openai")
    delivered = ceiling.admit("word " * 2_000_000)  # 10 MB in a single delta
    assert tokens.count_text(delivered, "gpt-4o", "openai") == 100 and ceiling.exceeded


@pytest.mark.parametrize(("model", "dialect"), [("claude-haiku-4-5", "anthropic"), ("gpt-4o", "openai")])
def test_a_cut_never_splits_a_character(model, dialect):
    ceiling = OutputCeiling(30, model, dialect)
    delivered = "".join(ceiling.admit(piece) for piece in ["日本語のテキスト🙂 "] * 100)
    assert "\ufffd" not in delivered and delivered
    assert tokens.count_output(delivered, model, dialect) == 30


def test_an_honest_provider_of_another_kind_is_never_cut_short():
    """Claude counts more tokens than cl100k_base on the same text: its answer at its own
    max_tokens stays under the cap as we count it, and is charged as our estimate, capped."""
    ceiling = OutputCeiling(120, "claude-haiku-4-5", "anthropic")
    answer = "The budget is a promise the hub keeps. " * 12  # ~120 tokens of cl100k_base
    delivered = "".join(ceiling.admit(piece) for piece in re.findall(r"\S+\s*", answer))
    assert delivered == answer and not ceiling.exceeded
    assert tokens.count_text(delivered, "claude-haiku-4-5", "anthropic") > 120 == ceiling.billed()


def test_special_token_text_is_counted_not_refused():
    ceiling = OutputCeiling(100, "gpt-4o", "openai")
    assert ceiling.admit("<|endoftext|> and on") == "<|endoftext|> and on"


def test_a_charge_never_exceeds_what_was_reserved():
    limits = Limits(input_tokens=20, output_tokens=100)
    charged, warning = charge(TokenCount(25, 500), 100, limits, "OpenAI", input_billed=True)
    assert charged == TokenCount(20, 100)
    assert warning == (
        "OpenAI reported 500 output tokens, above the cap of 100; OpenAI reported 25 input tokens, above the "
        "20 reserved; charged at the cap — check the provider's bill."
    )
    assert charge(TokenCount(20, 90), 95, limits, "OpenAI", True) == (TokenCount(20, 90), "")
    assert charge(None, 42, limits, "OpenAI", input_billed=False) == (TokenCount(0, 42), "")


# ---- runs against upstreams that ignore max_tokens


@pytest.fixture
def openai(alpha, fake_openai):
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)


async def play(run: Run) -> tuple[Run, str, list]:
    events, text = [], ""
    async for event in runs.stream(run):
        events.append(event)
        if isinstance(event, Delta):
            text += event.text
    assert isinstance(events[0], Started) and isinstance(events[-1], Ended)
    return events[-1].run, text, events


FAULTS = {
    "endless stream": {"endless": True},
    "one giant chunk": {"one_chunk": True, "ignore_max_tokens": True, "reply_text": "word " * 50_000},
    "usage above max_tokens": {"reported_usage": {"completion_tokens": 5000}},
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fault", FAULTS)
async def test_settled_spend_never_exceeds_the_limit_whatever_the_upstream_does(
    alice, alpha, openai, fake_openai, fault
):
    for name, value in FAULTS[fault].items():
        setattr(fake_openai, name, value)
    fake_openai.reply_text = FAULTS[fault].get("reply_text", "word " * 300)
    await Budget.objects.acreate(team=alpha, monthly_limit_usd=Decimal("0.05"))
    finished = []
    for _ in range(8):
        run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o", ASK, 1000)
        reserved = run.max_cost_usd
        ended = [e async for e in runs.stream(run)][-1]
        if ended.run.status == Run.Status.FAILED:
            assert "budget" in ended.run.error_message
            break
        assert ended.run.cost_usd <= reserved and ended.run.output_tokens <= 1000
        finished.append(ended.run)
    spent = sum([u.cost_usd async for u in UsageRecord.objects.all()], Decimal(0))
    assert len(finished) == 4 and spent <= Decimal("0.05")


@pytest.mark.django_db(transaction=True)
async def test_an_endless_stream_is_cut_at_the_cap_and_hung_up_on(alice, alpha, openai, fake_openai):
    fake_openai.endless = True
    fake_openai.chunk_delay = 0.001
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o", ASK, 50)
    run, text, events = await play(run)
    assert run.status == Run.Status.COMPLETED and events[-1].finish_reason == "length"
    assert run.error_message == "Stopped at the cap of 50 output tokens."
    assert tokens.count_text(text, "gpt-4o", "openai") == 50 == run.output_tokens and run.output == text
    assert await asyncio.to_thread(fake_openai.client_disconnected.wait, 5)


@pytest.mark.django_db(transaction=True)
async def test_one_giant_chunk_is_cut_before_it_is_relayed(alice, alpha, openai, fake_openai):
    fake_openai.one_chunk, fake_openai.ignore_max_tokens = True, True
    fake_openai.reply_text = "word " * 200_000  # one 1 MB delta
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o", ASK, 100)
    run, text, events = await play(run)
    [delta] = [e for e in events if isinstance(e, Delta)]
    assert tokens.count_text(delta.text, "gpt-4o", "openai") == 100 == run.output_tokens
    assert run.cost_usd <= run.max_cost_usd


@pytest.mark.django_db(transaction=True)
async def test_usage_reported_above_the_cap_is_charged_at_the_cap_flagged_audited_and_mailed(
    alice, alpha, openai, fake_openai, alice_client
):
    fake_openai.reported_usage = {"completion_tokens": 500}
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o", ASK, 100)
    run, _, _ = await play(run)
    warning = "OpenAI reported 500 output tokens, above the cap of 100; charged at the cap — check the provider's bill."
    assert run.usage_warning == warning and run.output_tokens == 100 and run.cost_usd <= run.max_cost_usd
    usage = await UsageRecord.objects.aget(run_id=str(run.uuid))
    assert usage.output_tokens == 100
    entry = await AuditEntry.objects.aget(action="usage_over_cap")
    assert entry.after["warning"] == warning and entry.team_id == alpha.pk
    assert [m.to for m in mail.outbox] == [["alice@example.com"]] and warning in mail.outbox[0].body
    page = (await sync_to_async(alice_client.get)("/playground/")).content.decode()
    assert "OpenAI reported 500 output tokens, above the cap of 100" in page  # the admin's banner


@pytest.mark.django_db(transaction=True)
async def test_a_ten_megabyte_line_mid_stream_ends_the_run_with_its_text_charged(
    alice, alpha, openai, fake_openai
):
    first = sse({"choices": [{"index": 0, "delta": {"content": "Hello there. "}}]})
    fake_openai.stream_raw_next(itertools.chain([first], huge_line(10 * 1024 * 1024)))
    await Budget.objects.acreate(team=alpha, monthly_limit_usd=Decimal("5"))
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o", ASK, 100)
    run, text, _ = await play(run)
    assert text == "Hello there. " == run.output and run.status == Run.Status.FAILED
    assert run.error_message == (
        "Unexpected response from OpenAI: a line of its stream was over 1 MiB; it was not read further. "
        "The text so far is kept."
    )
    assert run.reserved_usd is None and run.output_tokens == tokens.count_text(text, "gpt-4o", "openai")
    assert await UsageRecord.objects.filter(run_id=str(run.uuid)).aexists()
