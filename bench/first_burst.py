"""A fresh server's first burst: N concurrent requests sent the moment its port opens.

    .venv/bin/python bench/first_burst.py [--burst 100] [--rounds 3] [--workers N]

Each round starts the hub anew as `make run` serves it (`python -m llmhub.serve`, SQLite in a fresh
data folder; with `--workers N`, N processes on a throwaway PostgreSQL and Redis, bench/gateway.py's
helpers), in front of the fake OpenAI, and sends N non-streaming chat completions at once as soon as
it accepts connections. Printed per round: how long the port took to open, then the burst's first
answer, p50 and last answer (from the burst's start), and the server's CPU time for the burst; then
the same for a second burst at the now warm server.

What a fresh server pays at its first requests is what llmhub/warm.py takes out of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _gateway_bench():
    """bench/gateway.py, by path (the name `gateway` is the hub's API app)."""
    spec = importlib.util.spec_from_file_location("gateway_bench", ROOT / "bench" / "gateway.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gateway_bench = _gateway_bench()


async def burst(base: str, key: str, size: int) -> list[float]:
    """Seconds from the burst's start to each answer, sorted."""
    body = {"model": "openai/gpt-4o-mini", "messages": gateway_bench.PROMPT, "max_tokens": 64}
    headers = {"authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=120) as client:
        started = time.perf_counter()

        async def one() -> float:
            response = await client.post("/v1/chat/completions", json=body)
            if response.status_code != 200:
                raise SystemExit(f"a request failed: {response.status_code} {response.text[:200]}")
            return time.perf_counter() - started

        return sorted(await asyncio.gather(*(one() for _ in range(size))))


def line(name: str, answers: list[float], cpu: float) -> str:
    first, p50, last = answers[0], answers[len(answers) // 2], answers[-1]
    return f"{name}: first {first * 1000:5.0f} ms, p50 {p50 * 1000:5.0f} ms, last {last * 1000:5.0f} ms, server CPU {cpu:.2f} s"


def round_(data: Path, key: str, options: argparse.Namespace) -> None:
    port = gateway_bench.free_port()
    started = time.perf_counter()
    hub = gateway_bench.start_hub(data, port, "daphne", options.workers)
    opened = time.perf_counter() - started
    base = f"http://127.0.0.1:{port}"
    try:
        cpu = gateway_bench.cpu_seconds(hub.pid)
        cold = asyncio.run(burst(base, key, options.burst))
        cpu, cold_cpu = gateway_bench.cpu_seconds(hub.pid), gateway_bench.cpu_seconds(hub.pid) - cpu
        warm = asyncio.run(burst(base, key, options.burst))
        warm_cpu = gateway_bench.cpu_seconds(hub.pid) - cpu
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(hub.pid, signal.SIGTERM)
        hub.wait(30)
    print(f"port open after {opened:.2f} s")
    print("  " + line("fresh", cold, cold_cpu))
    print("  " + line("warm ", warm, warm_cpu), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--burst", type=int, default=100, help="concurrent requests")
    parser.add_argument("--rounds", type=int, default=3, help="fresh servers, one after the other")
    parser.add_argument("--workers", type=int, default=1, help="server processes (on PostgreSQL and Redis)")
    options = parser.parse_args()
    with gateway_bench.services(options.workers):
        data = Path(tempfile.mkdtemp(prefix="llmhub-first-burst-"))
        up_port = gateway_bench.free_port()
        upstream = gateway_bench.start_upstream(up_port)
        try:
            key = gateway_bench.set_up(data, f"http://127.0.0.1:{up_port}/v1")
            print(
                f"first burst: {options.burst} concurrent requests at a fresh server, {options.workers} worker(s)"
            )
            for _ in range(options.rounds):
                round_(data, key, options)
        finally:
            upstream.terminate()
            upstream.wait(10)


if __name__ == "__main__":
    main()
