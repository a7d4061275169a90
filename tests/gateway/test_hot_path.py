"""The hot path: the SQL statements one non-streaming /v1/chat/completions request runs, per phase,
pinned so that a change adding statements to every request fails here (issue 16).

The request goes through the real ASGI app in this process (every thread's connection is watched);
the upstream is the fake OpenAI server on 127.0.0.1. Phases: the request (key, model, estimate, up to
the plan), the reservation (the plan, and the run's INSERT with its hold, up to the moment the
upstream is called), and the settlement (everything after it).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from django.db import connection
from django.db.backends.signals import connection_created
from django.db.backends.utils import CursorWrapper
from django.test import override_settings

from gateway import keys
from providers import breaker, configuration
from providers.errors import NetworkError
from providers.models import Price, Provider, ProviderModel
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.servers import Server
from usage.models import Budget, FallbackPolicy, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

# The statements each phase runs, in a steady state (the key's last use already noted).
# On PostgreSQL a transaction's BEGIN is not a statement Django runs (SQLite's BEGIN IMMEDIATE is),
# and the settlement's claim, usage row and roll-up are one statement (usage/records.py). The request
# reads the configuration's version only: the API key is kept in the snapshot (gateway/keys.py);
# with it, whether any circuit is open: none is, so the plan reads no circuit breaker.
# The settlement reads whether the provider that answered has a circuit to close (usage/records.py):
# on PostgreSQL within its one statement.
MOST = {"request": 1, "reservation": 4, "settlement": 6}
MOST_ON_POSTGRESQL = {"request": 1, "reservation": 3, "settlement": 2}
VERSION_READ = "SELECT version, EXISTS (SELECT 1 FROM providers_circuitbreaker WHERE open_until IS NOT NULL)"
CONFIGURATION_TABLES = ("providers_", "usage_budget", "usage_fallbackpolicy", "gateway_modelalias")
BODY = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 64,
}


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement run meanwhile, by any thread's connection (connections live on in the
    server's threads, so it is Django's cursor that is watched, not one connection), in order.
    With DEBUG on, every connection logs its queries, so the hot path's statements go through
    Django's cursor too (llmhub/statements.py: `run`)."""
    seen: list[str] = []
    execute = CursorWrapper._execute_with_wrappers

    def watched(cursor, sql, *args, **kwargs):
        seen.append(sql)
        return execute(cursor, sql, *args, **kwargs)

    CursorWrapper._execute_with_wrappers = watched
    try:
        with override_settings(DEBUG=True):
            yield seen
    finally:
        CursorWrapper._execute_with_wrappers = execute


@pytest.fixture
def hub(alpha, fake_openai):
    """Team Alpha on OpenAI, with a daily budget (so every run reserves and settles against it)."""
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    FallbackPolicy.objects.create(team=alpha, enabled=False, retry_count=0)
    Budget.objects.create(team=alpha, daily_limit_usd=Decimal("10"))
    return keys.create(alpha, "hot path")


async def complete(secret: str) -> dict:
    """One request through the ASGI application as the server runs it (the API's own request path)."""
    from llmhub.asgi import application

    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {secret}".encode()),
    ]
    sent = HttpCommunicator(
        application, "POST", "/v1/chat/completions", body=json.dumps(BODY).encode(), headers=headers
    )
    response = await sent.get_response(timeout=10)
    await sent.wait(timeout=10)  # what the request does after its answer, too
    assert response["status"] == 200, response["body"]
    return json.loads(response["body"])


def phases(seen: list[str], called_at: int) -> dict[str, list[str]]:
    planned = next(i for i, sql in enumerate(seen) if sql.startswith(VERSION_READ)) + 1
    return {
        "request": seen[:planned],
        "reservation": seen[planned:called_at],
        "settlement": seen[called_at:],
    }


async def test_a_chat_completion_runs_a_pinned_number_of_statements_per_phase(hub, fake_openai):
    await complete(hub.secret)  # warm: the key's last use is noted once a minute, not per request
    called_at = []
    chat = fake_openai.chat

    def chat_noting_when(body):
        called_at.append(len(seen))
        return chat(body)

    fake_openai.chat = chat_noting_when
    with statements() as seen:
        answer = await complete(hub.secret)
    assert answer["choices"][0]["message"]["content"] == fake_openai.reply_text
    assert await UsageRecord.objects.filter(api_key=hub.key).acount() == 2  # both settled
    counted = {phase: len(sql) for phase, sql in phases(seen, called_at[0]).items()}
    listing = "\n".join(seen)
    assert counted == (MOST if connection.vendor == "sqlite" else MOST_ON_POSTGRESQL), listing
    # The run is written once before the call, hold included, in the reservation's transaction.
    written = [
        sql
        for sql in seen[: called_at[0]]
        if sql.startswith(('INSERT INTO "usage_run"', 'UPDATE "usage_run"'))
    ]
    assert len(written) == 1 and written[0] == phases(seen, called_at[0])["reservation"][-1], listing
    # The configuration's version is read once, in the request phase: the reservation's and the
    # settlement's lookups, in other threads (sync_to_async copies the context), use the pin.
    assert [sql for sql in seen if sql.startswith(VERSION_READ)] == [
        VERSION_READ + " FROM providers_configurationversion WHERE id = 1"
    ]
    reservation = phases(seen, called_at[0])["reservation"]
    assert not [sql for sql in reservation if '"providers_circuitbreaker"' in sql]  # the plan read none


async def test_a_request_that_finds_a_circuit_open_reads_the_breakers_and_skips_its_provider(
    hub, alpha, fake_openai, fake_anthropic
):
    """Found open (in the version's read), the plan reads the breakers and falls back."""
    await sync_to_async(registry.save)(
        "anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=fake_anthropic.url, team=alpha
    )
    await FallbackPolicy.objects.filter(team=alpha).aupdate(
        enabled=True, order=["anthropic/claude-haiku-4-5"]
    )
    await complete(hub.secret)  # warm
    for _ in range(5):
        await sync_to_async(breaker.record_failure)("openai", NetworkError("OpenAI"))
    with statements() as seen:
        answer = await complete(hub.secret)
    assert answer["model"] == "anthropic/claude-haiku-4-5"
    assert [sql for sql in seen if '"providers_circuitbreaker"' in sql]
    assert len([r for r in fake_openai.requests if r.path.endswith("/chat/completions")]) == 1


async def test_a_request_writes_no_configuration_row(hub):
    with statements() as seen:
        await complete(hub.secret)
    writes = [sql for sql in seen if sql.split(" ")[0] in ("INSERT", "UPDATE", "DELETE")]
    assert writes  # the run, its usage row and its roll-up are written...
    # The table written: INSERT INTO t, UPDATE t, DELETE FROM t (a subquery may read others).
    written = [sql.split(" ")[1 if sql.startswith("UPDATE") else 2].strip('"') for sql in writes]
    touched = [table for table in written if table.startswith(CONFIGURATION_TABLES)]
    assert touched == []  # ...but no provider, model, price, budget, policy or alias row


def test_a_fresh_server_saves_file_providers_at_start_and_its_requests_only_read_them(
    alpha, fake_openai, tmp_path
):
    """Reads never write: the providers file's providers are saved when the server starts, so the
    first request of a fresh process finds them and writes no configuration row."""
    path = tmp_path / "providers.toml"
    path.write_text(f"""
[[providers]]
id = "office"
name = "Office gateway"
dialect = "openai"
endpoint = "{fake_openai.url}"
api_key_env = "HOT_PATH_OFFICE_KEY"

[[providers.models]]
id = "gpt-4o-mini"
context_window = 128000
max_output = 4096
input_per_1m = "0.15"
output_per_1m = "0.60"
""")
    env = {"LLMHUB_PROVIDERS_FILE": str(path), "HOT_PATH_OFFICE_KEY": GOOD_KEYS["openai"]}
    server = Server("gateway/hot-path-fresh", **env)
    try:
        provider = Provider.objects.get(pk="office")  # saved at start-up, before any request
        price = Price.objects.get(model__provider=provider)
        secret = keys.create(alpha, "fresh").secret
        answer = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={**BODY, "model": "office/gpt-4o-mini"},
            headers={"authorization": f"Bearer {secret}"},
            timeout=20,
        )
        assert answer.status_code == 200, answer.text
    finally:
        server.stop()
    assert Provider.objects.get(pk="office").updated_at == provider.updated_at
    assert list(Price.objects.filter(model__provider=provider)) == [price]
    assert Price.objects.get(pk=price.pk).checked_at == price.checked_at
    assert UsageRecord.objects.get(provider_id="office").cost_usd > 0


def test_the_server_sees_each_configuration_change_at_its_next_request(hub, hub_url, alpha, fake_openai):
    """The server process keeps the configuration in memory; a change made by another process (this
    one) is seen by its very next request: a new price, a cap, a disabled provider, a fallback policy."""

    def ask(**extra) -> httpx.Response:
        headers = {"authorization": f"Bearer {hub.secret}"}
        return httpx.post(
            f"{hub_url}/v1/chat/completions", json={**BODY, **extra}, headers=headers, timeout=20
        )

    assert ask().status_code == 200  # the server's snapshot is filled
    row = ProviderModel.objects.get(pk="openai/gpt-4o-mini")
    price = Price.objects.create(
        model=row,
        model_ref=row.pk,
        input_per_1m=Decimal("100"),
        output_per_1m=Decimal("200"),
        source=Price.Source.ADMIN,
    )
    assert ask().status_code == 200
    assert UsageRecord.objects.order_by("pk").last().price == price
    Budget.objects.create(team=alpha, provider_id="openai", per_run_hard_cap_tokens=7)
    assert ask(max_tokens=500).status_code == 200
    assert Run.objects.order_by("pk").last().max_tokens == 7
    FallbackPolicy.objects.filter(team=alpha).delete()
    FallbackPolicy.objects.create(team=alpha, enabled=True, retry_count=0, order=["openai/gpt-4o"])
    fake_openai.fail_next_as("server_error")
    assert ask().json()["model"] == "openai/gpt-4o"  # fell back, as the new policy says
    registry.disable("openai")
    refused = ask()
    assert refused.status_code == 400 and "is disabled" in refused.json()["error"]["message"]


async def test_requests_pinned_to_different_versions_each_get_their_own_answers(hub):
    """A request pinned before a price change keeps the price it started with while a request that
    began after the change gets the new one, both running at once and looking up in turns; a
    lookup after a request, in the task that ran it, gets the new one (the pin ended with it)."""
    ref = "openai/gpt-4o-mini"
    changed, looked_again = asyncio.Event(), asyncio.Event()

    def prices() -> list[Decimal]:
        return sorted(price.input_per_1m for price in registry.model_row(ref).prices.all())

    @configuration.pinned
    async def early() -> list[Decimal]:
        first = await sync_to_async(prices)()
        await changed.wait()
        again = await sync_to_async(prices)()
        looked_again.set()
        return [first, again]

    @configuration.pinned
    async def late() -> list[Decimal]:
        await looked_again.wait()  # the early request has just looked up again, under its version
        return await sync_to_async(prices)()

    async def change() -> None:
        await asyncio.sleep(0)  # the early request reads first (one thread runs both, in turn)
        row = await ProviderModel.objects.aget(pk=ref)
        await Price.objects.filter(model=row).adelete()
        await Price.objects.acreate(
            model=row,
            model_ref=ref,
            input_per_1m=Decimal("100"),
            output_per_1m=Decimal("200"),
            source=Price.Source.ADMIN,
        )
        changed.set()

    assert await configuration.pinned(lambda: sync_to_async(prices)())() != [Decimal("100")]
    task = asyncio.create_task(early())
    await change()
    early_seen, late_seen = await asyncio.gather(task, late())
    assert early_seen[0] == early_seen[1] != [Decimal("100")]  # the prices it started with, twice
    assert late_seen == [Decimal("100")]  # the new price only
    assert await sync_to_async(prices)() == [Decimal("100")]


@pytest.mark.skipif(
    connection.settings_dict["CONN_MAX_AGE"] == 0, reason="connections closed after each use, as configured"
)
async def test_requests_reuse_the_servers_database_connections(hub):
    """Through the ASGI app as the server runs it: a request's database work runs on the server's
    pooled threads, whose connections last, not on a thread of its own that connects each time."""
    await complete(hub.secret)
    opened = []

    def noted(sender, connection, **kwargs) -> None:
        opened.append(connection)

    connection_created.connect(noted)
    try:
        for _ in range(20):
            await complete(hub.secret)
    finally:
        connection_created.disconnect(noted)
    assert len(opened) < 10, f"{len(opened)} connections opened for 20 requests"
