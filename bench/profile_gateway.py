"""Where a non-streaming /v1/chat/completions request spends the server's CPU: the hub (as `make run`
serves it) under yappi, every thread counted (the event loop and the database threads), with the
load of bench/gateway.py at concurrency 1. The first 20 requests (imports, the tokenizer's load, the
first connections) are not counted.

    .venv/bin/pip install -e '.[profile]'   # yappi: a profiler, not a dependency of the hub
    .venv/bin/python bench/profile_gateway.py [--requests 300] [--top 40]

Printed: CPU per request, then CPU per request by area (the first frame of ours, or the library, that a
sample's stack enters) and the functions with the most CPU of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

# bench/gateway.py, under another name than the hub's own `gateway` app (it puts the hub first on
# sys.path, before this folder).
_spec = importlib.util.spec_from_file_location("gateway_bench", Path(__file__).with_name("gateway.py"))
bench = sys.modules["gateway_bench"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
ROOT, UPSTREAM_KEY = bench.ROOT, bench.UPSTREAM_KEY

SERVE = """
import signal, sys, yappi
yappi.set_clock_type("cpu")
from llmhub import serve
signal.signal(signal.SIGUSR1, lambda *_: yappi.clear_stats())  # the warm-up done: count from here
yappi.start(builtins=False)
try:
    serve.main(["--host", "127.0.0.1", "--port", sys.argv[1]])
finally:
    yappi.stop()
    yappi.get_func_stats().save(sys.argv[2], type="pstat")
"""


def areas(stats_path: Path, requests: int, top: int) -> None:
    import pstats

    stats = pstats.Stats(str(stats_path))
    own: dict[str, float] = defaultdict(float)
    rows = []
    for (filename, line, name), (_, _, tottime, _, _) in stats.stats.items():
        own[_area(filename)] += tottime
        rows.append((tottime, f"{_short(filename)}:{line} {name}"))
    total = sum(own.values())
    print(f"profiled CPU: {total / requests * 1000:.1f} ms a request ({requests} requests)")
    print("own CPU by area, ms a request:")
    for area, seconds in sorted(own.items(), key=lambda item: -item[1])[:top]:
        print(f"  {seconds / requests * 1000:6.2f}  {area}")
    print("functions with the most CPU of their own, ms a request:")
    for seconds, where in sorted(rows, reverse=True)[:top]:
        print(f"  {seconds / requests * 1000:6.3f}  {where}")


def _short(filename: str) -> str:
    for marker in ("site-packages/", str(ROOT) + "/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _area(filename: str) -> str:
    """The package (django/db, twisted, ...) or our module a function belongs to."""
    short = _short(filename)
    parts = short.split("/")
    if "site-packages/" in filename:
        return "/".join(parts[:2]) if parts[0] in ("django", "twisted", "channels") else parts[0]
    if str(ROOT) in filename:
        return short
    return "stdlib " + parts[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--top", type=int, default=40)
    options = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="llmhub-profile-"))
    up_port, hub_port = bench.free_port(), bench.free_port()
    command = [sys.executable, "-m", "tests.fakes.openai", "--port", str(up_port), "--key", UPSTREAM_KEY]
    upstream = subprocess.Popen([*command, "--chunk-delay", "0"], cwd=ROOT, stdout=subprocess.DEVNULL)
    bench.wait_for(up_port, upstream, "the fake upstream")
    upstream_url = f"http://127.0.0.1:{up_port}/v1"
    key = bench.set_up(data, upstream_url)
    stats_path = data / "hub.pstat"
    env = {**os.environ, "LLMHUB_DATA_DIR": str(data)}
    hub = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(hub_port), str(stats_path)],
        cwd=ROOT,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        bench.wait_for(hub_port, hub, "the hub")
        hub_url = f"http://127.0.0.1:{hub_port}/v1"
        # Imports, the tokenizer's load, first connections: done once, not counted.
        asyncio.run(bench.load(hub_url, key, "openai/gpt-4o-mini", 1, 20))
        hub.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
        result = asyncio.run(bench.load(hub_url, key, "openai/gpt-4o-mini", 1, options.requests))
        print(f"hub p50 {result.pct(result.latencies, 50):.2f} ms; errors {len(result.errors)}")
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(60)
        upstream.terminate()
        upstream.wait(10)
    areas(stats_path, options.requests, options.top)


if __name__ == "__main__":
    main()
