"""The API's front and the engine's plan in one trip to a database thread (issue 16): a request is
written, admitted, planned and its first reservation held in that trip, then the engine runs it
(usage/runs.py, handed the plan). Whatever the plan raises, the request ends as it did when the
engine planned it itself: the same answer, the same run row, the same money; a client that hangs up
meanwhile leaves no hold behind.

Requests go through the ASGI application as the server runs it, in this process; the upstream is
the fake OpenAI (and Anthropic) server.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.test import override_settings
from django.utils import timezone

from llmhub import hops
from providers import breaker
from providers.errors import NetworkError
from providers.registry import registry
from tests.conftest import GOOD_KEYS, failing_writes
from tests.gateway.test_hot_path import hub as team_on_openai
from tests.gateway.test_hot_path import statements
from usage import budgets, live
from usage.models import Budget, FallbackPolicy, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
hub = team_on_openai  # team Alpha on the fake OpenAI, a $10 daily budget, no fallback; its API key
HOST = (b"host", b"127.0.0.1")
# The reservation's first statement: SQLite's BEGIN IMMEDIATE, PostgreSQL's read of the budgets (the
# plan itself reads nothing while no circuit is open: providers/configuration.py).
RESERVING = ("BEGIN", 'FROM "usage_budget"')
HOLDS = "SUM(reserved_usd)"  # the reservation reads what is held against the budget


async def post(secret: str, body: dict | None = None, hang_up=None) -> tuple[int | None, dict]:
    """A request through the ASGI application, to its end (what it does after answering included).
    `hang_up`, awaited after the body is read, returns when the client disconnects."""
    from llmhub.asgi import application

    body = body or {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi."}]}
    headers = [HOST, (b"content-type", b"application/json"), (b"authorization", f"Bearer {secret}".encode())]
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers}
    scope |= {"query_string": b"", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80)}
    incoming = [{"type": "http.request", "body": json.dumps(body).encode()}]
    status, sent = [], []

    async def receive() -> dict:
        if incoming:
            return incoming.pop()
        if hang_up is not None:
            await hang_up()
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()  # connected until the application stops listening
        return {}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            sent.append(message.get("body", b""))

    await application(scope, receive, send)
    return (status[0] if status else None), (json.loads(b"".join(sent)) if sent else {})


@contextmanager
def trips() -> Iterator[list]:
    """The functions sent off the loop to pooled threads: through llmhub.hops, or run_in_executor
    with the loop's default executor."""
    loop = asyncio.get_running_loop()
    sent: list = []
    original, submit = loop.run_in_executor, hops._Pool.submit

    def noted(executor, function, *args):
        if executor is None:
            sent.append(function)
        return original(executor, function, *args)

    def hopped(pool, item):
        sent.append(item[3])  # (loop, future, context, function, args)
        return submit(pool, item)

    loop.run_in_executor, hops._Pool.submit = noted, hopped
    try:
        yield sent
    finally:
        del loop.run_in_executor
        hops._Pool.submit = submit


class Gate:
    """Holds the first statement of the request's reservation (its run admitted and planned) until
    opened: the trip is then in flight, for as long as a test needs. DEBUG is on meanwhile,
    so the hot path's statements go through Django's cursor, where the gate stands
    (llmhub/statements.py `run`)."""

    def __init__(self) -> None:
        self.reached, self.open = threading.Event(), threading.Event()

    @contextmanager
    def installed(self) -> Iterator[Gate]:
        execute = CursorWrapper._execute_with_wrappers

        def held(cursor, sql, *args, **kwargs):
            if (sql.startswith(RESERVING[0]) or RESERVING[1] in sql) and not self.reached.is_set():
                self.reached.set()
                assert self.open.wait(10), "the gate was never opened"
            return execute(cursor, sql, *args, **kwargs)

        CursorWrapper._execute_with_wrappers = held
        try:
            with override_settings(DEBUG=True):
                yield self
        finally:
            self.open.set()
            CursorWrapper._execute_with_wrappers = execute

    async def wait(self) -> None:
        assert await asyncio.to_thread(self.reached.wait, 10), "the run was never planned"


async def held_now(alpha) -> Decimal:
    budget = await Budget.objects.aget(team=alpha, provider__isnull=True)
    return await sync_to_async(budgets.reserved)(budget, timezone.now())


async def test_a_request_is_admitted_planned_and_settled_in_two_trips(hub, fake_openai):
    assert (await post(hub.secret))[0] == 200  # warm: the key's last use noted, the client connected
    with trips() as sent:
        status, answer = await post(hub.secret)
    assert status == 200 and answer["choices"][0]["message"]["content"] == fake_openai.reply_text
    assert len(sent) == 2, sent  # the front with the plan and the reservation; the settlement


async def test_a_provider_cooling_off_ends_the_run_unstarted_and_unheld(hub, alpha, fake_openai):
    for _ in range(5):
        await sync_to_async(breaker.record_failure)("openai", NetworkError("OpenAI"))
    status, answer = await post(hub.secret)
    assert status == 503 and answer["error"]["code"] == "upstream_unavailable"
    assert answer["error"]["message"].startswith("OpenAI failed 5 times in a row; skipped until ")
    run = await Run.objects.aget()
    assert (run.status, run.reserved_usd, run.cost_usd) == (Run.Status.FAILED, None, None)
    assert run.error_message == answer["error"]["message"] and run.started_at is None
    assert not await UsageRecord.objects.aexists() and await held_now(alpha) == 0
    assert not [r for r in fake_openai.requests if r.path.endswith("/chat/completions")]


async def test_a_budget_refusal_for_the_first_model_falls_back_and_charges_the_one_that_answered(
    hub, alpha, fake_openai, fake_anthropic
):
    await sync_to_async(registry.save)(
        "anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=fake_anthropic.url, team=alpha
    )
    await FallbackPolicy.objects.filter(team=alpha).aupdate(
        enabled=True, order=["anthropic/claude-haiku-4-5"]
    )
    await Budget.objects.acreate(team=alpha, provider_id="openai", monthly_limit_usd=Decimal("0"))
    status, answer = await post(hub.secret)
    assert status == 200 and answer["choices"][0]["message"]["content"] == fake_anthropic.reply_text
    run = await Run.objects.aget()
    assert run.status == Run.Status.COMPLETED and run.model_used == "anthropic/claude-haiku-4-5"
    assert run.attempts[0]["model"] == "openai/gpt-4o-mini" and "Monthly" in run.attempts[0]["skipped"]
    record = await UsageRecord.objects.aget()
    assert record.cost_usd == run.cost_usd > 0 and run.reserved_usd is None
    assert await held_now(alpha) == 0
    assert not [r for r in fake_openai.requests if r.path.endswith("/chat/completions")]


async def test_the_run_is_written_with_its_hold_before_the_provider_is_called(hub, alpha, fake_openai):
    """The API's run is first written in its reservation's transaction, hold included (one commit
    fewer a request): when the provider is called, its row is committed, streaming and held."""
    chat, found = fake_openai.chat, []

    def chat_reading_the_run(body):
        fields = ("status", "model_used", "reserved_usd", "max_cost_usd", "reservation_expires_at")
        found.append(Run.objects.values_list(*fields).get())
        connection.close()  # the fake server's thread keeps no connection
        return chat(body)

    fake_openai.chat = chat_reading_the_run
    status, _ = await post(hub.secret)
    assert status == 200
    ((status, model_used, reserved, max_cost, expires),) = found
    assert (status, model_used) == (Run.Status.STREAMING, "openai/gpt-4o-mini")
    assert reserved == max_cost > 0 and expires > timezone.now()
    run = await Run.objects.aget()
    assert run.status == Run.Status.COMPLETED and run.reserved_usd is None and await held_now(alpha) == 0
    assert (await UsageRecord.objects.aget()).cost_usd == run.cost_usd > 0


async def test_a_budget_refusal_of_every_model_is_a_402_and_holds_nothing(hub, alpha, fake_openai):
    await Budget.objects.filter(team=alpha).aupdate(daily_limit_usd=Decimal("0"))
    status, answer = await post(hub.secret)
    assert status == 402 and answer["error"]["code"] == "budget_exceeded"
    assert answer["error"]["message"].startswith("Daily Alpha team budget: $0.00 of $0.00 left")
    run = await Run.objects.aget()
    assert (run.status, run.reserved_usd, run.cost_usd) == (Run.Status.FAILED, None, None)
    assert run.error_message == answer["error"]["message"] and not await UsageRecord.objects.aexists()


def test_a_reservation_the_database_refuses_is_a_503_and_nothing_is_sent(hub, fake_openai):
    """The API's run is first written with its reservation: a database that refuses it leaves no
    run (as one that refuses a request's first write), no hold, and nothing sent."""
    with failing_writes("usage_run", "INSERT"):
        status, answer = async_to_sync(post)(hub.secret)
    assert status == 503 and answer["error"]["code"] == "database_unavailable"
    assert not Run.objects.exists() and not UsageRecord.objects.exists()
    assert not [r for r in fake_openai.requests if r.path.endswith("/chat/completions")]


@pytest.mark.parametrize("refusal", ["context_length_exceeded", "unpriced_model"])
async def test_a_request_refused_after_its_run_is_written_reserves_nothing(hub, alpha, refusal):
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi."}]}
    if refusal == "context_length_exceeded":
        body["messages"][0]["content"] = "word " * 200_000
    else:
        from providers.models import Price

        await Price.objects.filter(model_id="openai/gpt-4o-mini").adelete()
    with statements() as seen:
        status, answer = await post(hub.secret, body)
    assert status == 400 and answer["error"]["code"] == refusal
    run = await Run.objects.aget()
    assert run.status == Run.Status.FAILED and run.reserved_usd is None and run.reservation_expires_at is None
    assert not [sql for sql in seen if HOLDS in sql], seen


async def test_a_draining_server_plans_nothing(hub, alpha, fake_openai):
    live.RUNNING.draining = True
    try:
        with statements() as seen:
            status, answer = await post(hub.secret)
    finally:
        live.RUNNING.draining = False
    assert status == 503 and answer["error"]["code"] == "server_restarting"
    run = await Run.objects.aget()
    assert run.status == Run.Status.INTERRUPTED and run.error_message.endswith("Nothing was charged.")
    assert run.reserved_usd is None and run.started_at is None
    assert not [sql for sql in seen if HOLDS in sql], seen


async def test_a_drain_begun_during_the_trip_ends_the_run_and_releases_its_hold(hub, alpha, fake_openai):
    with Gate().installed() as gate:
        request = asyncio.ensure_future(post(hub.secret))
        await gate.wait()
        live.RUNNING.draining = True
        gate.open.set()
        try:
            status, answer = await request
        finally:
            live.RUNNING.draining = False
    assert status == 503 and answer["error"]["code"] == "server_restarting"
    run = await Run.objects.aget()
    assert run.status == Run.Status.INTERRUPTED and run.error_message.endswith("Nothing was charged.")
    assert run.reserved_usd is None and run.reservation_expires_at is None and run.cost_usd is None
    assert await held_now(alpha) == 0 and not await UsageRecord.objects.aexists()
    assert not [r for r in fake_openai.requests if r.path.endswith("/chat/completions")]


async def test_a_client_hanging_up_during_the_trip_leaves_no_hold(hub, alpha, fake_openai):
    """The trip cannot be called back once on its thread: it is waited for, and the run it began
    ended at once (not left to its lease's end and recovery), its budget free again."""
    loop = asyncio.get_running_loop()

    with Gate().installed() as gate:

        async def hang_up() -> None:
            await gate.wait()  # the run is admitted and being planned
            loop.call_later(0.2, gate.open.set)  # the trip goes on after the client has gone

        status, _ = await post(hub.secret, hang_up=hang_up)
    assert status is None  # nothing was answered
    run = await Run.objects.aget()
    assert run.status == Run.Status.CANCELLED and run.error_message == "Cancelled."
    assert run.reserved_usd is None and run.reservation_expires_at is None and run.cost_usd is None
    assert await held_now(alpha) == 0 and not await UsageRecord.objects.aexists()
    assert not [r for r in fake_openai.requests if r.path.endswith("/chat/completions")]
