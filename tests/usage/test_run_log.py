"""Runs: the requests log and a run's record, through Django's test client."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from gateway import keys
from providers.base import Message
from providers.registry import registry
from tests.conftest import GOOD_KEYS, PASSWORD
from usage import runs
from usage.models import Run

pytestmark = pytest.mark.django_db
PROMPT = [{"role": "user", "content": "Summarize the quarter."}]


def make_run(
    team,
    *,
    user=None,
    api_key=None,
    model="openai/gpt-4o",
    used=None,
    status="completed",
    cost="0.0075",
    minutes_ago=5,
    **fields,
) -> Run:
    started = timezone.now() - timedelta(minutes=minutes_ago)
    run = Run.objects.create(
        team=team,
        user=user,
        api_key=api_key,
        model_requested=model,
        model_used=model if used is None else used,
        messages=PROMPT,
        max_tokens=500,
        status=status,
        output=fields.pop("output", "The quarter was good."),
        input_tokens=1000,
        output_tokens=500,
        cost_usd=None if cost is None else Decimal(cost),
        started_at=started,
        first_token_at=started + timedelta(milliseconds=420),
        finished_at=started + timedelta(seconds=3),
        **fields,
    )
    Run.objects.filter(pk=run.pk).update(created_at=started)
    return run


@pytest.fixture
def log(alpha, alice, bob, charlie):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, team=alpha)
    registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]}, team=alpha)
    key = keys.create(alpha, "CI summarizer", created_by=alice).key
    return {
        "alice": make_run(alpha, user=alice, minutes_ago=30),
        "bob": make_run(alpha, user=bob, model="anthropic/claude-haiku-4-5", minutes_ago=20),
        "api": make_run(alpha, api_key=key, model="openai/gpt-4o-mini", minutes_ago=10),
        "failed": make_run(
            alpha,
            user=alice,
            model="openai/gpt-4o",
            used="anthropic/claude-sonnet-4-5",
            status="failed",
            cost=None,
            error_message="Every fallback model failed too.",
            attempts=[{"model": "openai/gpt-4o", "error": "OpenAI is having trouble (HTTP 500)."}],
            minutes_ago=1,
        ),
        "charlie": make_run(charlie.memberships.get().team, user=charlie, minutes_ago=2),
        "key": key,
    }


def rows(client, query: str = "") -> list[str]:
    """The run ids listed, in order."""
    html = client.get(f"/runs/{query}").content.decode()
    return [line.split('"')[1].removeprefix("run-") for line in html.split("<tr id=")[1:]]


def test_the_log_lists_runs_and_api_requests_with_who_cost_and_latency(alice_client, log):
    html = alice_client.get("/runs/").content.decode()
    assert rows(alice_client) == [str(log[k].uuid) for k in ("failed", "api", "bob", "alice")]  # newest first
    assert "API key CI summarizer" in html and "llmh-..." in html and ">bob<" in html
    assert "asked for openai/gpt-4o" in html  # the fallback that answered is shown as used
    assert "0.42 s" in html and "3.00 s" in html  # time to first token, total
    assert "$0.0075" in html and "1,000 / 500" in html
    assert str(log["charlie"].uuid) not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?status=failed", ["failed"]),
        ("?provider=anthropic", ["failed", "bob"]),
        ("?model=openai/gpt-4o-mini", ["api"]),
        ("?model=anthropic/claude-sonnet-4-5", ["failed"]),  # the model used, not only the one asked for
        ("?person={bob}", ["bob"]),
        ("?key={key}", ["api"]),
    ],
)
def test_the_log_filters(alice_client, log, bob, query, expected):
    query = query.format(bob=bob.pk, key=log["key"].pk)
    assert rows(alice_client, query) == [str(log[k].uuid) for k in expected]


def test_a_date_range_filters_and_a_bad_one_is_explained(alice_client, log):
    Run.objects.filter(pk=log["alice"].pk).update(created_at=timezone.now() - timedelta(days=40))
    since = (timezone.localdate() - timedelta(days=7)).isoformat()
    assert str(log["alice"].uuid) not in rows(alice_client, f"?from={since}")
    html = alice_client.get("/runs/?from=yesterday").content.decode()
    assert "Dates are written as YYYY-MM-DD." in html and str(log["alice"].uuid) in html


def test_an_unknown_filter_value_is_refused_by_the_form(alice_client, log):
    html = alice_client.get("/runs/?status=exploded&person=999999").content.decode()
    assert "Select a valid choice" in html
    assert len(rows(alice_client, "?status=exploded")) == 4  # the bad filter is left out, not guessed


def test_members_see_their_own_runs_only(bob_client, log):
    assert rows(bob_client) == [str(log["bob"].uuid)]
    assert bob_client.get(f"/runs/{log['alice'].uuid}/record/").status_code == 404


def test_another_team_sees_nothing_of_alphas_runs(charlie_client, log):
    assert rows(charlie_client) == [str(log["charlie"].uuid)]
    assert charlie_client.get(f"/runs/{log['alice'].uuid}/record/").status_code == 404


def test_the_log_pages(alice_client, alpha, alice):
    for n in range(55):
        make_run(alpha, user=alice, minutes_ago=n + 1)
    first, second = rows(alice_client), rows(alice_client, "?status=completed&page=2")
    assert len(first) == 50 and len(second) == 5 and not set(first) & set(second)
    assert "page=2" in alice_client.get("/runs/?status=completed").content.decode()


def test_staff_choose_the_team(alpha, log, charlie):
    staff = User.objects.create_user("root", password=PASSWORD, is_staff=True)
    from django.test import Client

    client = Client()
    client.force_login(staff)
    assert len(rows(client)) == 5  # every team
    assert rows(client, f"?team={charlie.memberships.get().team_id}") == [str(log["charlie"].uuid)]


def test_the_record_shows_prompt_output_attempts_and_error(alice_client, log):
    html = alice_client.get(f"/runs/{log['failed'].uuid}/record/").content.decode()
    assert "Summarize the quarter." in html and "The quarter was good." in html
    assert "<code>openai/gpt-4o</code>: failed, OpenAI is having trouble (HTTP 500)." in html
    assert "Every fallback model failed too." in html
    assert "anthropic/claude-sonnet-4-5" in html


def test_the_log_does_not_query_per_row(alice_client, alpha, alice, log):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert alice_client.get("/runs/").status_code == 200
        return len(captured)

    before = queries()
    for n in range(30):
        make_run(alpha, user=alice, minutes_ago=n + 1)
    assert queries() == before


@pytest.mark.django_db(transaction=True)
async def test_the_engine_records_the_time_to_the_first_token(alice, alpha, fake_openai):
    await sync_to_async(registry.save)(
        "openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha
    )
    fake_openai.chunk_delay = 0.05
    run = await sync_to_async(runs.create_run)(
        alice, alpha, "openai/gpt-4o-mini", [Message("user", "Hi")], 50
    )
    async for event in runs.stream(run):
        if isinstance(event, Run):
            run = event
    saved = await Run.objects.aget(pk=run.pk)
    assert saved.started_at < saved.first_token_at < saved.finished_at
    assert saved.time_to_first_token < saved.duration
