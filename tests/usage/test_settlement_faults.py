"""A database that cannot be written while runs settle or reserve: settlements are retried, spooled
durably and written exactly once when it is back; reservations fail with a clear message."""

from __future__ import annotations

import json
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.db import connection, connections

from llmhub.asgi import application
from providers.base import Delta, Message
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.database_faults import reopen_connections, sqlite_file_read_only, writes_refused
from usage import budgets, records, rollups, runs, spool
from usage.events import Ended
from usage.models import Budget, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [Message("user", "Write about budgets.")]
ORIGIN = (b"origin", b"http://127.0.0.1")
HOST = (b"host", b"127.0.0.1")
UNAVAILABLE = (
    "The database is busy or unavailable, so the budget cannot be checked and the run did not start. "
    "Try again in 5 seconds."
)


@pytest.fixture
def openai(alpha, fake_openai):
    return registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)


async def settle_while_writes_are_refused(run: Run) -> tuple[Run, str]:
    """Stream a run; from its first piece of text until it has settled, the database refuses writes."""
    text, refusal = "", writes_refused()
    async for event in runs.stream(run):
        if isinstance(event, Delta):
            if not text:
                await refusal.__aenter__()
            text += event.text
        elif isinstance(event, Ended):
            run = event.run
    await refusal.__aexit__(None, None, None)
    return run, text


async def test_a_settlement_the_database_cannot_take_is_spooled_then_written_once(
    alice, alpha, openai, fake_openai, spool_file, database_faults
):
    fake_openai.reply_text = "word " * 40
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o-mini", ASK, 200)
    run, text = await settle_while_writes_are_refused(run)
    assert run.status == Run.Status.COMPLETED and text == fake_openai.reply_text  # the user got the answer
    assert spool.pending() == 1
    assert not await UsageRecord.objects.filter(run_id=str(run.uuid)).aexists()
    replayed = await sync_to_async(records.replay_spool)()
    assert (replayed.written, replayed.left) == (1, 0) and spool.pending() == 0
    usage = await UsageRecord.objects.aget(run_id=str(run.uuid))
    assert (usage.input_tokens, usage.output_tokens) == (
        run.input_tokens,
        run.output_tokens,
    ) and usage.cost_usd > 0
    stored = await Run.objects.aget(pk=run.pk)
    assert (stored.status, stored.output, stored.cost_usd) == (Run.Status.COMPLETED, text, usage.cost_usd)
    assert stored.reserved_usd is None
    assert await sync_to_async(rollups.differences)() == []


async def test_a_spooled_settlement_that_had_landed_is_not_charged_twice(
    alice, alpha, openai, spool_file, database_faults
):
    """A commit that went through while its connection was lost looks like a failure: the spooled copy
    of a settlement already written is skipped."""
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o-mini", ASK, 200)
    async for event in runs.stream(run):
        if isinstance(event, Ended):
            run = event.run
    await sync_to_async(records.postpone)(run)
    await sync_to_async(records.postpone)(run)
    replayed = await sync_to_async(records.replay_spool)()
    assert (replayed.written, replayed.skipped, replayed.left) == (0, 2, 0)
    assert await UsageRecord.objects.filter(run_id=str(run.uuid)).acount() == 1


async def test_the_spool_is_private_and_holds_no_credential(
    alice, alpha, openai, spool_file, database_faults
):
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o-mini", ASK, 200)
    run, _ = await settle_while_writes_are_refused(run)
    assert stat.S_IMODE(spool_file.stat().st_mode) == 0o600
    content = spool_file.read_text()
    assert GOOD_KEYS["openai"] not in content
    (entry,) = [json.loads(line) for line in content.splitlines()]
    assert entry["run"]["fields"]["uuid"] == str(run.uuid) and entry["run"]["fields"]["output_tokens"] > 0


async def test_while_the_database_stays_down_replaying_keeps_the_spool(
    alice, alpha, openai, spool_file, database_faults
):
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o-mini", ASK, 200)
    run, _ = await settle_while_writes_are_refused(run)
    async with writes_refused():
        replayed = await sync_to_async(records.replay_spool)()
    assert (replayed.written, replayed.left) == (0, 1) and replayed.fault
    assert spool.pending() == 1
    assert (await sync_to_async(records.replay_spool)()).written == 1


async def test_a_run_that_cannot_reserve_its_budget_fails_at_once_saying_why(
    alice, alpha, openai, fake_openai, spool_file, database_faults
):
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o-mini", ASK, 200)
    async with writes_refused():
        async for event in runs.stream(run):
            assert not isinstance(event, Delta)
            if isinstance(event, Ended):
                run = event.run
    assert run.status == Run.Status.FAILED and run.error_message == UNAVAILABLE
    assert not [r for r in fake_openai.requests if r.path.endswith("/chat/completions")]
    # The run's end waited in the spool: once the database is back, the page says what happened.
    await sync_to_async(records.replay_spool)()
    stored = await Run.objects.aget(pk=run.pk)
    assert (stored.status, stored.error_message) == (Run.Status.FAILED, UNAVAILABLE)


async def finish(run: Run) -> Run:
    async for event in runs.stream(run):
        if isinstance(event, Ended):
            run = event.run
    return run


async def test_the_run_page_says_why_a_run_could_not_start(
    alice, alpha, openai, alice_client, spool_file, database_faults
):
    run = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o-mini", ASK, 200)
    session = (b"cookie", f"sessionid={alice_client.cookies['sessionid'].value}".encode())
    communicator = WebsocketCommunicator(
        application, f"/ws/runs/{run.uuid}/", headers=[session, ORIGIN, HOST]
    )
    connected, _ = await communicator.connect()
    assert connected
    async with writes_refused():
        await communicator.send_json_to({"action": "start", "HEADERS": {}})
        frame = await communicator.receive_from(timeout=10)
    await communicator.disconnect()
    assert "The database is busy or unavailable, so the budget cannot be checked" in frame


@pytest.mark.skipif(connection.vendor != "sqlite", reason="a read-only SQLite file")
async def test_after_a_read_only_spell_runs_go_through_again_without_a_restart(
    alice, alpha, openai, spool_file, database_faults
):
    """Connections opened while the file was read-only stay read-only in SQLite: they are reopened."""
    first = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o-mini", ASK, 200)
    second = await sync_to_async(runs.create_run)(alice, alpha, "openai/gpt-4o-mini", ASK, 200)
    with sqlite_file_read_only(connection.settings_dict["NAME"]):
        await reopen_connections()
        first = await finish(first)
    assert first.status == Run.Status.FAILED and first.error_message == UNAVAILABLE
    second = await finish(second)
    assert second.status == Run.Status.COMPLETED
    assert await UsageRecord.objects.filter(run_id=str(second.uuid)).aexists()
    await reopen_connections()  # the shared sync thread's opened read-only too (as a new request's would not)
    await sync_to_async(records.replay_spool)()
    assert (await Run.objects.aget(pk=first.pk)).status == Run.Status.FAILED


def test_replay_spool_reports_what_it_wrote(alice, alpha, openai, spool_file, capsys):
    run = runs.create_run(alice, alpha, "openai/gpt-4o-mini", ASK, 200)
    run.status, run.input_tokens, run.output_tokens = Run.Status.COMPLETED, 12, 30
    records.postpone(run)
    call_command("replay_spool")
    assert "1 spooled settlement written, 0 already recorded, 0 waiting." in capsys.readouterr().out
    assert UsageRecord.objects.get(run_id=str(run.uuid)).output_tokens == 30
    call_command("replay_spool")
    assert "The settlement spool is empty." in capsys.readouterr().out


def test_admins_see_how_many_settlements_wait_for_the_database(
    alice, alpha, openai, spool_file, alice_client, charlie_client
):
    run = runs.create_run(alice, alpha, "openai/gpt-4o-mini", ASK, 200)
    run.status, run.input_tokens, run.output_tokens = Run.Status.COMPLETED, 12, 30
    records.postpone(run)
    records.postpone(run)
    for page in ("/providers/settings/", "/spend/"):
        html = alice_client.get(page).content.decode()
        assert "2 finished runs are waiting to be charged: the database could not be written" in html
    assert "waiting to be charged" not in charlie_client.get("/spend/").content.decode()  # not his team's
    records.replay_spool()
    assert "waiting to be charged" not in alice_client.get("/providers/settings/").content.decode()


def test_a_line_cut_short_by_a_crash_costs_no_other_settlement(alice, alpha, openai, spool_file):
    run = runs.create_run(alice, alpha, "openai/gpt-4o-mini", ASK, 200)
    run.status, run.input_tokens, run.output_tokens = Run.Status.COMPLETED, 12, 30
    spool_file.write_text('{"run": {"model": "usage.run", "fie')  # the power went out mid-write
    records.postpone(run)
    replayed = records.replay_spool()
    assert (replayed.written, replayed.rejected, replayed.left) == (1, 1, 0)
    assert UsageRecord.objects.filter(run_id=str(run.uuid)).exists()
    assert spool_file.with_name("settlements.spool.rejected").read_text().startswith('{"run": {"model"')


def test_spooled_spend_counts_before_a_new_run_reserves(alice, alpha, openai, spool_file):
    """The database is back but the replay timer has not fired: the next reservation writes the
    spooled spend first, so the budget sees it."""
    Budget.objects.create(team=alpha, daily_limit_usd=Decimal("0.01"))
    spent = runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 200)
    spent.status, spent.input_tokens, spent.output_tokens = Run.Status.COMPLETED, 2000, 500  # $0.01
    records.postpone(spent)
    with pytest.raises(budgets.BudgetRefused, match=r"Daily Alpha team budget: \$0.00 of \$0.01 left"):
        budgets.reserve(runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 10))
    assert spool.pending() == 0


def test_processes_replaying_at_once_write_each_settlement_once(alice, alpha, openai, spool_file):
    spooled = []
    for _ in range(5):
        run = runs.create_run(alice, alpha, "openai/gpt-4o-mini", ASK, 200)
        run.status, run.input_tokens, run.output_tokens = Run.Status.COMPLETED, 12, 30
        records.postpone(run)
        spooled.append(str(run.uuid))
    barrier = threading.Barrier(4)

    def replay() -> None:
        try:
            barrier.wait()
            records.replay_spool()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(replay) for _ in range(4)]:
            future.result()
    records.replay_spool()  # whatever a busy moment left
    assert sorted(UsageRecord.objects.values_list("run_id", flat=True)) == sorted(spooled)
    assert spool.pending() == 0
