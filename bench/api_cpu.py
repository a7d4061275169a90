"""CPU time the hub's ASGI application spends on one non-streaming /v1/chat/completions request, in
this process (event loop and database threads included), without daphne or a network client: a
measure that other work on a busy machine does not skew, for comparing one change with another.

    .venv/bin/python bench/api_cpu.py [--requests 100] [--rounds 7] [--stream] [--loop uvloop]
    .venv/bin/python -m tests.with_postgres .venv/bin/python bench/api_cpu.py   # on PostgreSQL

The hub is set up as bench/gateway.py sets it up (SQLite in a fresh data folder, or DATABASE_URL's
database; a team budget, usage recorded); the fake upstream is another process. Printed: the best
round's CPU ms a request, and the SQL statements of one request.

PostgreSQL connections are kept as the hub keeps them by default (LLMHUB_DB_CONN_MAX_AGE=60);
--conn-max-age 0 measures closing them after each use, as behind pgbouncer: 4 connections a request,
~1.5 ms of CPU each. bench/instructions.py counts the same request's instructions instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# bench/gateway.py, under another name than the hub's own `gateway` app.
_spec = importlib.util.spec_from_file_location("gateway_bench", Path(__file__).with_name("gateway.py"))
bench = sys.modules["gateway_bench"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


async def request(app, body: bytes, key: str) -> int:
    """One request through the ASGI application; its status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"authorization", f"Bearer {key}".encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    status = 0
    done = asyncio.Event()

    async def receive() -> dict:
        if incoming:
            return incoming.pop()
        await done.wait()  # the client stays connected until the response ends
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    return status


async def measure(app, body: bytes, key: str, requests: int, rounds: int) -> list[float]:
    for _ in range(30):  # warm: imports, connections, caches
        assert await request(app, body, key) == 200
    results = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(requests):
            status = await request(app, body, key)
            assert status == 200, status
        results.append((time.process_time() - started) / requests * 1000)
    return results


def statements(app, body: bytes, key: str) -> list[str]:
    """The SQL of one request, from every thread's connection."""
    from django.db import connections

    seen: list[str] = []

    def wrap(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    for conn in connections.all():
        conn.execute_wrappers.append(wrap)
    from django.db.backends.signals import connection_created

    def install(sender, connection, **kwargs):
        if wrap not in connection.execute_wrappers:  # a wrapper reconnected keeps its wrappers
            connection.execute_wrappers.append(wrap)

    connection_created.connect(install)
    asyncio.run(request(app, body, key))
    return seen


def database() -> str:
    from django.db import connection

    if connection.vendor == "sqlite":
        return "sqlite"
    # psycopg sends a transaction's BEGIN and COMMIT itself: not in the statements listed.
    return f"{connection.vendor}, CONN_MAX_AGE {connection.settings_dict['CONN_MAX_AGE']}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio", help="the event loop")
    parser.add_argument(
        "--conn-max-age", default="60", help="PostgreSQL: LLMHUB_DB_CONN_MAX_AGE (the hub's default: 60)"
    )
    options = parser.parse_args()
    os.environ["LLMHUB_DB_CONN_MAX_AGE"] = options.conn_max_age
    if options.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    with hub_in_process("llmhub-api-cpu-", options.stream) as (application, body, key):
        rounds = asyncio.run(measure(application, body, key, options.requests, options.rounds))
        median = sorted(rounds)[len(rounds) // 2]
        kind = "streaming" if options.stream else "non-streaming"
        print(
            f"CPU a {kind} request ({options.loop} loop, {database()}): "
            f"best {min(rounds):.2f} ms, median {median:.2f} ms"
        )
        sql = statements(application, body, key)
        print(f"SQL statements in one request: {len(sql)}")
        for line in sql:
            print("  " + line[:110])


@contextlib.contextmanager
def hub_in_process(prefix: str, stream: bool) -> Iterator[tuple[Any, bytes, str]]:
    """The hub's ASGI application in this process on a fresh data folder, in front of the fake
    OpenAI (stopped afterwards), with the measured request's body and API key; logging off (the
    request and run lines are not what the benchmarks here measure)."""
    data = Path(tempfile.mkdtemp(prefix=prefix))
    port = bench.free_port()
    command = [sys.executable, "-m", "tests.fakes.openai", "--port", str(port), "--key", bench.UPSTREAM_KEY]
    # Under valgrind (bench/instructions.py) the fake upstream is not counted: its preload left out.
    plain = {name: value for name, value in os.environ.items() if not name.startswith("LD_")}
    upstream = subprocess.Popen(
        [*command, "--chunk-delay", "0"], cwd=bench.ROOT, stdout=subprocess.DEVNULL, env=plain
    )
    try:
        bench.wait_for(port, upstream, "the fake upstream")
        key = bench.set_up(data, f"http://127.0.0.1:{port}/v1")
        logging.disable(logging.INFO)
        from llmhub.asgi import application

        wanted = {"model": "openai/gpt-4o-mini", "messages": bench.PROMPT, "max_tokens": 64}
        if stream:
            wanted |= {"stream": True, "stream_options": {"include_usage": True}}
        yield application, json.dumps(wanted).encode(), key
    finally:
        upstream.terminate()
        upstream.wait(10)


if __name__ == "__main__":
    main()
