"""Exceptions the hub raises (and catches) in one /v1/chat/completions request, by the site that
raised each: the same request as bench/api_cpu.py and bench/instructions.py, traced with
sys.settrace in every thread (the event loop's and the hops'), counted over the measured requests
after a warm-up.

    .venv/bin/python bench/exceptions.py [--requests 20] [--stream] [--callers 3]

Why: an exception made and caught costs a few thousand instructions (callgrind), and libraries use
them for control flow (a missing attribute, key or event loop); a request made ~60 (issue 16). Only
exceptions that pass through Python code are seen: one raised and cleared inside C is not.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import threading
from collections import Counter
from pathlib import Path

_spec = importlib.util.spec_from_file_location("api_cpu_bench", Path(__file__).with_name("api_cpu.py"))
api_cpu = sys.modules["api_cpu_bench"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api_cpu)
bench = api_cpu.bench
WARM_UP = 20
SHORTER = (f"{bench.ROOT}/", "site-packages/", f"python{sys.version_info.major}.{sys.version_info.minor}/")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--callers", type=int, default=0, help="also list each site by its callers")
    options = parser.parse_args()
    os.environ.setdefault("LLMHUB_DB_CONN_MAX_AGE", "60")
    with api_cpu.hub_in_process("llmhub-exceptions-", options.stream) as (application, body, key):
        sites = asyncio.run(_traced(application, body, key, options.requests, options.callers))
    kind = "streaming" if options.stream else "non-streaming"
    print(f"exceptions a {kind} request: {sum(sites.values()) / options.requests:.1f}")
    for (name, site), count in sites.most_common():
        print(f"{count / options.requests:6.1f}  {name:20} {site}")


async def _traced(app, body: bytes, key: str, requests: int, callers: int) -> Counter:
    sites: Counter = Counter()
    counting = False

    def trace(frame, event, arg):
        if event == "exception" and counting:
            kind, _, traceback = arg
            if traceback is not None and traceback.tb_next is None:  # where it was raised
                site, caller = _site(frame), frame.f_back
                for _ in range(callers):
                    if caller is None:
                        break
                    site, caller = f"{site} <- {_site(caller)}", caller.f_back
                sites[kind.__name__, site] += 1
        return trace

    # Before the first request: the hops' threads start then, and a thread's trace is set at its start.
    threading.settrace(trace)
    sys.settrace(trace)
    for _ in range(WARM_UP):  # imports, connections, caches
        assert await api_cpu.request(app, body, key) == 200
    counting = True
    for _ in range(requests):
        assert await api_cpu.request(app, body, key) == 200
    counting = False
    sys.settrace(None)
    threading.settrace(None)
    return sites


def _site(frame) -> str:
    name = frame.f_code.co_filename
    for prefix in SHORTER:
        name = name.rpartition(prefix)[2] if prefix in name else name
    return f"{name}:{frame.f_lineno} {frame.f_code.co_name}"


if __name__ == "__main__":
    main()
