"""Several server processes on PostgreSQL and Redis, as `make serve WORKERS=N` runs them: budgets are
exact across processes, a cancel reaches a run from another process, and a key revoked in one
process is refused by the others at once. Runs in the PostgreSQL pass (`make test`); SQLite cannot
be shared by several servers (`python -m llmhub.serve --workers` refuses it)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from django.db import connection
from django.db.models import Sum

from gateway import keys
from gateway.models import ApiKey
from providers.base import Message
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.redis_server import redis_server
from tests.run_sockets import cancel_from_elsewhere
from tests.servers import Server, listening
from usage import runs
from usage.estimates import available_model, estimate
from usage.models import Budget, Run, UsageRecord

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor == "sqlite", reason="several server processes need PostgreSQL: the PostgreSQL pass"
    ),
]
ASK = [{"role": "user", "content": "Say hello."}]
MODEL = "openai/gpt-4o"
CAP = 100  # output tokens a request may use: the fake writes past it, so each is charged at its cap


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


@pytest.fixture
def openai_provider(alpha, fake_openai):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    fake_openai.reply_text = "word " * 1000
    return fake_openai


def start_workers(servers: list[Server], name: str, redis_url: str) -> Server:
    """`python -m llmhub.serve --workers 2`, logging JSON lines (with their pid) to a fresh file."""
    hub = Server(f"scale/{name}", workers=2, REDIS_URL=redis_url, LLMHUB_LOG_FORMAT="json")
    servers.append(hub)
    return hub


def test_a_budget_for_ten_requests_lets_exactly_ten_of_a_hundred_through_two_workers(
    alpha, openai_provider, redis_url, servers
):
    openai_provider.chunk_delay = 0.002  # each answer takes a while: the requests overlap
    entry, dialect = available_model(alpha, MODEL)
    one = estimate(entry, dialect, [Message("user", "Say hello.")], CAP).max_cost
    limit = one * 10
    assert limit == limit.quantize(Decimal("0.000001"))  # the budget holds it exactly
    Budget.objects.create(team=alpha, monthly_limit_usd=limit)
    secret = keys.create(alpha, "nightly").secret
    hub = start_workers(servers, "workers", redis_url)

    async def hundred() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=None)
        auth = {"authorization": f"Bearer {secret}"}
        async with httpx.AsyncClient(base_url=hub.url, headers=auth, timeout=60, limits=limits) as client:
            body = {"model": MODEL, "messages": ASK, "max_tokens": CAP}
            return await asyncio.gather(*(client.post("/v1/chat/completions", json=body) for _ in range(100)))

    answers = asyncio.run(hundred())
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {200: 10, 402: 90}, [a.text for a in answers if a.status_code not in (200, 402)][:3]
    refused = next(answer for answer in answers if answer.status_code == 402)
    assert refused.json()["error"]["code"] == "budget_exceeded"
    spent = UsageRecord.objects.aggregate(total=Sum("cost_usd"))["total"]
    assert UsageRecord.objects.count() == 10 and 0 < spent <= limit
    assert not Run.objects.filter(reserved_usd__isnull=False).exists()  # every hold released
    answered = served_by(hub, "v1/chat/completions")
    assert len(answered) == 2 and sum(answered.values()) == 100  # both workers answered some
    assert set(answered) == on_uvloop(hub)  # each worker serves on uvloop's loop (llmhub/event_loop.py)


def test_a_run_started_in_one_process_is_cancelled_from_the_other(
    alice, alpha, alice_client, openai_provider, redis_url, servers
):
    openai_provider.chunk_delay = 0.01
    run = runs.create_run(alice, alpha, MODEL, [Message("user", "A long story")], 900)
    first, second = Server("scale/a", REDIS_URL=redis_url), Server("scale/b", REDIS_URL=redis_url)
    servers += [first, second]
    cancel_from_elsewhere(first, second, run, alice_client)
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and run.reserved_usd is None
    assert 0 < run.output_tokens < 900  # stopped long before its end
    assert UsageRecord.objects.get(run_id=str(run.uuid)).output_tokens == run.output_tokens


def test_a_key_revoked_in_one_process_is_refused_by_the_other_at_once(
    alice, alpha, alice_client, openai_provider, redis_url, servers
):
    new = keys.create(alpha, "ci")
    first, second = (
        Server("scale/revoke-a", REDIS_URL=redis_url),
        Server("scale/revoke-b", REDIS_URL=redis_url),
    )
    servers += [first, second]
    auth = {"authorization": f"Bearer {new.secret}"}
    body = {"model": MODEL, "messages": ASK, "max_tokens": 5}
    assert (
        httpx.post(f"{second.url}/v1/chat/completions", json=body, headers=auth, timeout=30).status_code
        == 200
    )
    session = {"sessionid": alice_client.cookies["sessionid"].value}
    with httpx.Client(base_url=first.url, cookies=session, timeout=30) as browser:
        browser.get("/settings/api-keys/").raise_for_status()  # sets the CSRF cookie
        headers = {"x-csrftoken": browser.cookies["csrftoken"], "origin": first.url, "referer": first.url}
        revoked = browser.post(f"/settings/api-keys/{new.key.pk}/revoke/", headers=headers)
        assert revoked.status_code in (200, 302), revoked.text[:500]
    assert ApiKey.objects.get(pk=new.key.pk).revoked_at is not None
    refused = httpx.post(f"{second.url}/v1/chat/completions", json=body, headers=auth, timeout=30)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


def served_by(hub: Server, endpoint: str = "v1/models") -> Counter:
    """Requests answered by each worker process (its pid, on the JSON log lines)."""
    lines = [json.loads(line) for line in hub.log().splitlines() if line.startswith("{")]
    return Counter(line["pid"] for line in lines if line.get("endpoint") == endpoint)


def on_uvloop(hub: Server) -> set[int]:
    """The worker processes whose start-up line says they serve on uvloop's event loop."""
    lines = [json.loads(line) for line in hub.log().splitlines() if line.startswith("{")]
    return {line["pid"] for line in lines if line.get("message", "").endswith(", uvloop event loop")}


def test_a_killed_worker_is_replaced_and_sigterm_stops_them_all(alpha, redis_url, servers):
    secret = keys.create(alpha, "nightly").secret
    hub = start_workers(servers, "replaced", redis_url)
    auth = {"authorization": f"Bearer {secret}"}

    def ask(times: int) -> None:
        for _ in range(times):  # a new connection each: the kernel spreads them over the workers
            assert httpx.get(f"{hub.url}/v1/models", headers=auth, timeout=30).status_code == 200

    ask(20)
    first = set(served_by(hub))
    assert len(first) == 2
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while len(set(served_by(hub)) - first) == 0:  # its socket's connections wait for the new worker
        assert time.monotonic() < deadline, hub.log()[-2000:]
        ask(5)
    assert hub.process.poll() is None
    hub.terminate()
    assert hub.process.wait(30) == 0
    for pid in set(served_by(hub)) - {victim}:
        assert not os.path.exists(f"/proc/{pid}")  # no worker left behind


def test_workers_whose_supervisor_is_killed_stop_and_free_the_port(alpha, redis_url, servers):
    secret = keys.create(alpha, "nightly").secret
    hub = start_workers(servers, "orphaned", redis_url)
    auth = {"authorization": f"Bearer {secret}"}
    deadline = time.monotonic() + 30
    while len(served_by(hub)) < 2:  # until both workers are known by their pid
        assert time.monotonic() < deadline
        assert httpx.get(f"{hub.url}/v1/models", headers=auth, timeout=30).status_code == 200
    hub.kill()  # kill -9: the supervisor forwards nothing
    deadline = time.monotonic() + 30
    while listening(hub.port) or any(os.path.exists(f"/proc/{pid}") for pid in served_by(hub)):
        assert time.monotonic() < deadline, "workers left serving without their supervisor"
        time.sleep(0.2)
