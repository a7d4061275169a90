"""The hub as a gateway: the same load sent straight to a fast fake upstream and through the hub's
OpenAI-compatible API, in one run, so the difference is what the hub adds.

    .venv/bin/python bench/gateway.py [--requests 400] [--skip-kill] [--server uvicorn] [--workers N]
        [--loop asyncio]

The hub runs as `make run` serves it (daphne, SQLite in a fresh data folder), with a team budget and
usage recording on; with `--workers N` (N > 1) as `make serve WORKERS=N` serves it (N daphne
processes on one port, on a throwaway PostgreSQL cluster and redis-server this script starts): every
request reserves against the budget, records its usage row and settles.
Printed: added latency (hub minus direct) at p50 / p99 for concurrency 1, 16 and 64, throughput at
each, the server's CPU time per request, time-to-first-token overhead when streaming, streaming
throughput at concurrency 16, the server's RSS idle (after a warm-up) and under load, usage rows
against completed requests, and whether a kill -9 under load lost a row for a completed response.

Targets (issue 16, 2-core machine): server CPU <= 4 ms a non-streaming request; added p50 <= 3 ms and
p99 <= 8 ms at concurrency 1, streaming time-to-first-token added <= 3 ms; throughput at concurrency
16, streaming and not, >= 35 % of the direct path's; idle RSS <= 120 MB; no error and no lost usage
row at concurrency 64, and none lost to a kill -9 under load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the hub's modules and the test fakes
UPSTREAM_KEY = "sk-bench-upstream-key-0000000000b3nc"
PROMPT = [{"role": "user", "content": "Say hello in five words."}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(port: int, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited: status {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not start on port {port}")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the workers of a multi-process server)."""
    total = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += sum(rss_mb(int(child)) for child in (task / "children").read_text().split())
    except FileNotFoundError:  # the process ended while being read
        pass
    return total


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children so far."""
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += sum(cpu_seconds(int(child)) for child in (task / "children").read_text().split())
    except FileNotFoundError:
        pass
    return total


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, whole response
    first_token: list[float] = field(default_factory=list)  # seconds, streaming only
    errors: list[str] = field(default_factory=list)
    completed_ids: list[str] = field(default_factory=list)
    wall: float = 0.0

    def pct(self, values: list[float], p: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0


async def load(
    base: str,
    key: str,
    model: str,
    concurrency: int,
    total: int,
    stream: bool = False,
    stop: asyncio.Event | None = None,
) -> Result:
    """`total` chat completions from `concurrency` workers, each waiting for its answer in full."""
    result = Result()
    body = {"model": model, "messages": PROMPT, "max_tokens": 64}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    headers = {"authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    remaining = iter(range(total))
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:

        async def worker() -> None:
            for _ in remaining:
                if stop is not None and stop.is_set():
                    return
                started = time.perf_counter()
                try:
                    if stream:
                        await one_stream(client, body, started, result)
                    else:
                        response = await client.post("/chat/completions", json=body)
                        if response.status_code != 200:
                            result.errors.append(f"{response.status_code} {response.text[:120]}")
                            continue
                        result.completed_ids.append(response.json()["id"])
                        result.latencies.append(time.perf_counter() - started)
                except httpx.HTTPError as error:
                    result.errors.append(type(error).__name__)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.wall = time.perf_counter() - started
    return result


async def one_stream(client: httpx.AsyncClient, body: dict, started: float, result: Result) -> None:
    first, ident, done = None, "", False
    async with client.stream("POST", "/chat/completions", json=body) as response:
        if response.status_code != 200:
            result.errors.append(f"{response.status_code} {(await response.aread())[:120]!r}")
            return
        async for line in response.aiter_lines():
            if line.startswith("data: [DONE]"):
                done = True
            elif line.startswith("data: {"):
                chunk = json.loads(line.removeprefix("data: "))
                ident = ident or chunk.get("id", "")
                if first is None and any(c.get("delta", {}).get("content") for c in chunk.get("choices", [])):
                    first = time.perf_counter() - started
    if done:
        result.latencies.append(time.perf_counter() - started)
        result.first_token.append(first or 0.0)
        result.completed_ids.append(ident)
    else:
        result.errors.append("stream ended without [DONE]")


def set_up(data: Path, upstream_url: str) -> str:
    """A team with an OpenAI-compatible provider at the fake, a generous budget, and an API key."""
    os.environ.update(LLMHUB_DATA_DIR=str(data), DJANGO_SETTINGS_MODULE="llmhub.settings")
    import django

    django.setup()
    from decimal import Decimal

    from django.core.management import call_command

    from accounts.models import Team
    from gateway import keys
    from providers.registry import registry
    from usage.models import Budget

    call_command("migrate", verbosity=0)
    team = Team.objects.create(name="Bench")
    registry.save("openai", {"api_key": UPSTREAM_KEY}, endpoint=upstream_url, team=team, private_network=True)
    Budget.objects.create(team=team, monthly_limit_usd=Decimal("100000"), daily_limit_usd=Decimal("10000"))
    return keys.create(team, "bench").secret


def usage_rows(ids: list[str]) -> tuple[int, int]:
    """(api usage rows in total, completed responses whose row is missing)."""
    from django.db import close_old_connections

    from usage.models import UsageRecord

    close_old_connections()
    total = UsageRecord.objects.filter(source="api").count()
    present = set(UsageRecord.objects.values_list("run_id", flat=True))
    wanted = {str(uuid.UUID(i.removeprefix("chatcmpl-"))) for i in ids if i}
    return total, len(wanted - present)


SERVERS = {
    # daphne as `make run` serves it (llmhub/serve.py: daphne with a drain and run recovery)
    "daphne": ["-m", "llmhub.serve", "--host", "127.0.0.1", "--port", "{port}"],
    "uvicorn": [
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--no-access-log",
        "llmhub.asgi:application",
    ],
}


def start_hub(data: Path, port: int, server: str, workers: int = 1, loop: str = "") -> subprocess.Popen:
    env = {**os.environ, "LLMHUB_DATA_DIR": str(data)}
    if loop:  # daphne's event loop (llmhub/event_loop.py); otherwise the hub's default
        env["LLMHUB_EVENT_LOOP"] = loop
    command = [sys.executable, *(part.format(port=port) for part in SERVERS[server])]
    if workers > 1 and server == "uvicorn":
        command[-1:-1] = ["--workers", str(workers)]  # uvicorn: one process per worker
    elif workers > 1:
        command += ["--workers", str(workers)]  # llmhub.serve: a supervisor and its workers
    # Its own process group, so a kill reaches every worker process too.
    hub = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_for(port, hub, "the hub")
    return hub


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=400, help="requests per concurrency level and side")
    parser.add_argument("--skip-kill", action="store_true", help="skip the kill -9 check")
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default="daphne",
        help="the ASGI server to run the hub with (uvicorn if installed)",
    )
    parser.add_argument("--workers", type=int, default=1, help="server processes (on PostgreSQL and Redis)")
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], default="", help="daphne's event loop (LLMHUB_EVENT_LOOP)"
    )
    options = parser.parse_args()
    with services(options.workers):
        bench(options)


@contextlib.contextmanager
def services(workers: int) -> Iterator[None]:
    """With several workers, a throwaway PostgreSQL and Redis, as `make serve WORKERS=N` needs."""
    with contextlib.ExitStack() as stack:
        if workers > 1:
            from tests.redis_server import redis_server
            from tests.with_postgres import postgres_cluster

            os.environ["DATABASE_URL"] = stack.enter_context(postgres_cluster())
            os.environ["REDIS_URL"] = stack.enter_context(redis_server())
        yield


def start_upstream(port: int) -> subprocess.Popen:
    """The fake OpenAI server (no delay between chunks), once it listens."""
    command = ["-m", "tests.fakes.openai", "--port", str(port), "--key", UPSTREAM_KEY, "--chunk-delay", "0"]
    upstream = subprocess.Popen(
        [sys.executable, *command], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(port, upstream, "the fake upstream")
    return upstream


def bench(options: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="llmhub-gateway-bench-"))
    up_port, hub_port = free_port(), free_port()
    upstream = start_upstream(up_port)
    upstream_url = f"http://127.0.0.1:{up_port}/v1"
    key = set_up(data, upstream_url)
    hub = start_hub(data, hub_port, options.server, options.workers, options.loop)
    hub_url = f"http://127.0.0.1:{hub_port}/v1"
    try:
        run(options, data, upstream, upstream_url, hub, hub_url, key, hub_port)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(hub.pid, signal.SIGTERM)  # the server and any worker left behind
        hub.wait(10)
        upstream.terminate()
        upstream.wait(10)


def run(options, data, upstream, upstream_url, hub, hub_url, key, hub_port) -> None:
    asyncio.run(load(upstream_url, UPSTREAM_KEY, "gpt-4o-mini", 4, 100))  # warm both sides
    warm = asyncio.run(load(hub_url, key, "openai/gpt-4o-mini", 4, 100))
    idle = rss_mb(hub.pid)
    peak = [idle]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.05):
            peak[0] = max(peak[0], rss_mb(hub.pid))

    print(
        f"gateway benchmark ({options.server}{', ' + options.loop if options.loop else ''}, {options.workers} worker(s)): "
        f"{options.requests} requests per level and side, "
        f"fake upstream on {upstream_url}"
    )
    print(
        f"{'concurrency':>11} | {'direct p50':>10} {'p99':>7} | {'hub p50':>8} {'p99':>7} | "
        f"{'added p50':>9} {'p99':>7} | {'direct req/s':>12} {'hub req/s':>9} {'ratio':>5} | "
        f"{'hub CPU/req':>11} | errors"
    )
    hub_completed: list[str] = list(warm.completed_ids)
    for concurrency in (1, 16, 64):
        direct = asyncio.run(load(upstream_url, UPSTREAM_KEY, "gpt-4o-mini", concurrency, options.requests))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        cpu_before = cpu_seconds(hub.pid)
        through = asyncio.run(load(hub_url, key, "openai/gpt-4o-mini", concurrency, options.requests))
        cpu = (cpu_seconds(hub.pid) - cpu_before) / max(1, len(through.latencies)) * 1000
        sampling.set()
        sampler.join()
        sampling.clear()
        hub_completed += through.completed_ids
        d50, d99 = direct.pct(direct.latencies, 50), direct.pct(direct.latencies, 99)
        h50, h99 = through.pct(through.latencies, 50), through.pct(through.latencies, 99)
        print(
            f"{concurrency:>11} | {d50:>8.2f}ms {d99:>5.2f}ms | {h50:>6.2f}ms {h99:>5.2f}ms | "
            f"{h50 - d50:>7.2f}ms {h99 - d99:>5.2f}ms | {direct.throughput:>12.0f} {through.throughput:>9.0f} "
            f"{through.throughput / direct.throughput:>5.2f} | {cpu:>9.1f}ms | "
            f"{len(direct.errors) + len(through.errors)}{' ' + through.errors[0] if through.errors else ''}"
        )

    direct = asyncio.run(
        load(upstream_url, UPSTREAM_KEY, "gpt-4o-mini", 1, options.requests // 2, stream=True)
    )
    through = asyncio.run(load(hub_url, key, "openai/gpt-4o-mini", 1, options.requests // 2, stream=True))
    hub_completed += through.completed_ids
    f_direct, f_hub = direct.pct(direct.first_token, 50), through.pct(through.first_token, 50)
    print(
        f"streaming, concurrency 1: first token p50 direct {f_direct:.2f} ms, hub {f_hub:.2f} ms "
        f"(added {f_hub - f_direct:.2f} ms); whole stream p50 added "
        f"{through.pct(through.latencies, 50) - direct.pct(direct.latencies, 50):.2f} ms; errors "
        f"{len(direct.errors) + len(through.errors)}"
    )
    direct = asyncio.run(load(upstream_url, UPSTREAM_KEY, "gpt-4o-mini", 16, options.requests, stream=True))
    cpu_before = cpu_seconds(hub.pid)
    through = asyncio.run(load(hub_url, key, "openai/gpt-4o-mini", 16, options.requests, stream=True))
    cpu = (cpu_seconds(hub.pid) - cpu_before) / max(1, len(through.latencies)) * 1000
    hub_completed += through.completed_ids
    print(
        f"streaming, concurrency 16: direct {direct.throughput:.0f} req/s, hub {through.throughput:.0f} req/s "
        f"(ratio {through.throughput / direct.throughput:.2f}); hub CPU/req {cpu:.1f} ms; errors "
        f"{len(direct.errors) + len(through.errors)}"
    )
    print(f"hub RSS: idle {idle:.0f} MB, peak under load {peak[0]:.0f} MB")
    total, missing = usage_rows(hub_completed)
    print(
        f"usage rows: {total} recorded for {len(hub_completed)} completed hub requests (warm-up included); "
        f"missing for a completed response: {missing}"
    )

    if options.skip_kill:
        return
    stop = asyncio.Event()

    async def killed() -> Result:
        task = asyncio.create_task(
            load(hub_url, key, "openai/gpt-4o-mini", 16, 100_000, stream=True, stop=stop)
        )
        await asyncio.sleep(2.0)
        os.killpg(hub.pid, signal.SIGKILL)
        stop.set()
        return await task

    result = asyncio.run(killed())
    hub.wait(10)
    _, missing = usage_rows(result.completed_ids)
    print(
        f"kill -9 under load (concurrency 16, streaming): {len(result.completed_ids)} responses received in "
        f"full, {len(result.errors)} cut off; usage rows missing for a full response: {missing}"
    )


if __name__ == "__main__":
    main()
