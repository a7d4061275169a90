"""daphne on asyncio's event loop against daphne on uvloop's: two hubs side by side, given the same
load in turns of a few requests each, so both see the same busy machine (on a shared machine, runs
minutes apart differ by more than the loops do).

    .venv/bin/python bench/event_loops.py [--requests 400] [--turn 20] [--loops asyncio,uvloop]

`--loops asyncio,asyncio` is the control: two hubs on the same loop differ by this much.

Both hubs serve one SQLite data folder set up as bench/gateway.py sets it up (a team budget, usage
recorded), one request at a time in all at concurrency 1; at concurrency 16 each turn is a burst of
16 * turn requests. Printed per loop and level: server CPU per request (user + system, /proc),
p50 / p99 latency, req/s; and the streaming first token p50.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import signal
import sys
import tempfile
from pathlib import Path

_spec = importlib.util.spec_from_file_location("gateway_bench", Path(__file__).with_name("gateway.py"))
bench = sys.modules["gateway_bench"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=400, help="requests per level and loop")
    parser.add_argument("--turn", type=int, default=20, help="requests a hub serves before the other's turn")
    parser.add_argument("--loops", default="asyncio,uvloop", help="the two hubs' event loops")
    options = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="llmhub-loops-bench-"))
    up_port = bench.free_port()
    upstream = bench.start_upstream(up_port)
    key = bench.set_up(data, f"http://127.0.0.1:{up_port}/v1")
    hubs = {}
    try:
        for number, loop in enumerate(options.loops.split(","), 1):
            port = bench.free_port()
            hub = bench.start_hub(data, port, "daphne", loop=loop)
            hubs[f"{number} {loop}"] = (hub, f"http://127.0.0.1:{port}/v1")
        compare(hubs, key, options)
    finally:
        for hub, _ in hubs.values():
            with contextlib.suppress(ProcessLookupError):
                hub.send_signal(signal.SIGTERM)
            hub.wait(10)
        upstream.terminate()
        upstream.wait(10)


def compare(hubs: dict, key: str, options: argparse.Namespace) -> None:
    model = "openai/gpt-4o-mini"
    for _, url in hubs.values():
        asyncio.run(bench.load(url, key, model, 4, 100))  # warm
    print(
        f"event loops side by side: {options.requests} requests per level and loop, turns of {options.turn}"
    )
    print(f"{'level':>12} | {'hub':>9} | {'CPU/req':>8} | {'p50':>8} {'p99':>8} | {'req/s':>6} | errors")
    for concurrency, stream in ((1, False), (16, False), (1, True)):
        results = {loop: bench.Result() for loop in hubs}
        cpu = dict.fromkeys(hubs, 0.0)
        turns = max(1, options.requests // (options.turn * concurrency))
        for turn in range(turns):
            order = list(hubs) if turn % 2 == 0 else list(hubs)[::-1]
            for loop in order:
                hub, url = hubs[loop]
                before = bench.cpu_seconds(hub.pid)
                part = asyncio.run(
                    bench.load(url, key, model, concurrency, options.turn * concurrency, stream)
                )
                cpu[loop] += bench.cpu_seconds(hub.pid) - before
                whole = results[loop]
                whole.latencies += part.latencies
                whole.first_token += part.first_token
                whole.errors += part.errors
                whole.wall += part.wall
        level = f"c={concurrency}{' stream' if stream else ''}"
        for loop, result in results.items():
            done = max(1, len(result.latencies))
            values = result.first_token if stream else result.latencies
            print(
                f"{level:>12} | {loop:>9} | {cpu[loop] / done * 1000:>6.2f}ms | "
                f"{result.pct(values, 50):>6.2f}ms {result.pct(values, 99):>6.2f}ms | "
                f"{result.throughput:>6.0f} | {len(result.errors)}"
            )


if __name__ == "__main__":
    main()
