"""Resident memory of the server processes: idle after start-up, after one API request, after 200.

    .venv/bin/python bench/memory.py [--workers N] [--requests 200] [--without-tokenizer]

The hub runs as `make run` serves it (`python -m llmhub.serve`, SQLite in a fresh data folder), in
front of the fake OpenAI (tests/fakes/openai.py) on 127.0.0.1; with `--workers N` (N > 1) as
`make serve WORKERS=N` serves it, on a throwaway PostgreSQL cluster and redis-server started here
(bench/gateway.py's helpers). Each process's VmRSS is read from /proc/<pid>/status:
  idle       after start-up and one GET /healthz,
  1 request  after one POST /v1/chat/completions (the first request loads what a run needs),
  N requests after N more (concurrency 4).
With several workers the supervisor and each worker get a row (a request reaches one worker).
`--without-tokenizer` serves with an empty tokenizer folder: the hub estimates every count instead
of loading tiktoken's tables, so the difference from a run without it is what the tables hold.

Target (issue 16): every process <= 120 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the hub's modules and the test fakes


def _gateway_bench():
    """bench/gateway.py, whose helpers start the hub and the fake upstream (by path: the name
    `gateway` is the hub's API app)."""
    spec = importlib.util.spec_from_file_location("gateway_bench", ROOT / "bench" / "gateway.py")
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gateway_bench = _gateway_bench()

TARGET_MB = 120
# After the port opens, the server still starts its periodic jobs (run recovery): let them run once.
SETTLE_SECONDS = 1.0


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return sorted(found)


def processes(hub: subprocess.Popen, workers: int) -> dict[str, int]:
    """Role -> pid: the server alone, or the supervisor and each of its workers."""
    if workers <= 1:
        return {"server": hub.pid}
    deadline = time.monotonic() + 30
    while len(pids := children(hub.pid)) < workers:
        if time.monotonic() > deadline:
            raise SystemExit(f"the supervisor started {len(pids)} of {workers} workers")
        time.sleep(0.1)
    return {"supervisor": hub.pid} | {f"worker {i + 1}": pid for i, pid in enumerate(pids)}


def wait_until_served(base: str, workers: int) -> None:
    """Every worker answers /healthz (the supervisor's port opens before its workers listen)."""
    deadline = time.monotonic() + 60
    answered = 0
    while answered < 4 * workers:
        if time.monotonic() > deadline:
            raise SystemExit("the hub did not answer /healthz")
        try:
            response = httpx.get(f"{base}/healthz", timeout=2)
            answered += response.status_code == 200
        except httpx.HTTPError:
            time.sleep(0.1)


def one_request(base: str, key: str) -> None:
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16}
    response = httpx.post(
        f"{base}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}, timeout=30
    )
    if response.status_code != 200:
        raise SystemExit(f"the request failed: {response.status_code} {response.text[:200]}")


def measure(options: argparse.Namespace) -> dict[str, list[float]]:
    data = Path(tempfile.mkdtemp(prefix="llmhub-memory-bench-"))
    up_port, hub_port = gateway_bench.free_port(), gateway_bench.free_port()
    upstream = gateway_bench.start_upstream(up_port)
    hub = None
    try:
        key = gateway_bench.set_up(data, f"http://127.0.0.1:{up_port}/v1")
        if options.without_tokenizer:  # the hub's environment, after the set-up read the settings
            empty = data / "no-tokenizer"
            empty.mkdir()
            os.environ.update(LLMHUB_TOKENIZER_DIR=str(empty), TIKTOKEN_CACHE_DIR=str(empty))
        hub = gateway_bench.start_hub(data, hub_port, "daphne", options.workers)
        base = f"http://127.0.0.1:{hub_port}"
        wait_until_served(base, options.workers)
        time.sleep(SETTLE_SECONDS)
        pids = processes(hub, options.workers)
        figures = {role: [vm_rss_mb(pid)] for role, pid in pids.items()}
        one_request(base, key)
        for role, pid in pids.items():
            figures[role].append(vm_rss_mb(pid))
        result = asyncio.run(gateway_bench.load(f"{base}/v1", key, "openai/gpt-4o-mini", 4, options.requests))
        if result.errors:
            raise SystemExit(
                f"{len(result.errors)} of {options.requests} requests failed: {result.errors[0]}"
            )
        for role, pid in pids.items():
            figures[role].append(vm_rss_mb(pid))
        return figures
    finally:
        if hub is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(hub.pid, signal.SIGTERM)
            hub.wait(30)
        upstream.terminate()
        upstream.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=1, help="server processes (on PostgreSQL and Redis)")
    parser.add_argument("--requests", type=int, default=200, help="requests after the first one")
    parser.add_argument(
        "--without-tokenizer",
        action="store_true",
        help="serve with no tokenizer installed (counts estimated): what the server holds without its tables",
    )
    options = parser.parse_args()
    with gateway_bench.services(options.workers):
        figures = measure(options)
    database = "PostgreSQL + Redis" if options.workers > 1 else "SQLite"
    tokenizer = ", no tokenizer (counts estimated)" if options.without_tokenizer else ""
    print(
        f"memory benchmark: VmRSS in MB, {options.workers} worker(s), {database}{tokenizer}, "
        f"target <= {TARGET_MB} MB"
    )
    print(
        f"{'process':<12} | {'idle':>6} | {'1 request':>9} | {f'+{options.requests} requests':>13} | target"
    )
    for role, (idle, first, after) in figures.items():
        verdict = "met" if max(idle, first, after) <= TARGET_MB else "over"
        print(f"{role:<12} | {idle:>6.1f} | {first:>9.1f} | {after:>13.1f} | {verdict}")
    total = [sum(values) for values in zip(*figures.values(), strict=True)]
    if len(figures) > 1:
        print(f"{'total':<12} | {total[0]:>6.1f} | {total[1]:>9.1f} | {total[2]:>13.1f} |")


if __name__ == "__main__":
    main()
