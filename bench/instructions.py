"""Instructions the hub executes for one /v1/chat/completions request, counted by valgrind's callgrind:
the same request as bench/api_cpu.py (the ASGI application in this process, the fake upstream in
another), counted only over the measured requests, after a warm-up.

    .venv/bin/python bench/instructions.py [--requests 20] [--stream]
    .venv/bin/python -m tests.with_postgres .venv/bin/python bench/instructions.py   # on PostgreSQL

Why: on a busy 2-core machine CPU time moves by ±1.5 ms a request from one run to the next (issue 16),
more than most single changes to the hot path; the count repeats within about 2 %. Compare copies of
the code at paths of the same length (the path is in every module's name and traceback string, and
changed the count by several percent). Needs valgrind (Debian: apt-get install valgrind); a run of 40
requests takes about half a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("api_cpu_bench", Path(__file__).with_name("api_cpu.py"))
api_cpu = sys.modules["api_cpu_bench"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api_cpu)
bench = api_cpu.bench
WARM_UP = 20


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--counted", action="store_true", help=argparse.SUPPRESS)  # under valgrind
    options = parser.parse_args()
    if options.counted:
        counted(options.requests, options.stream)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("bench/instructions.py needs valgrind (Debian: apt-get install valgrind).")
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",  # switched on around the measured requests only
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--counted",
        "--requests",
        str(options.requests),
        *(["--stream"] if options.stream else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind failed:\n{done.stderr[-2000:]}")
    total = int(found.group(1).replace(",", ""))
    kind = "streaming" if options.stream else "non-streaming"
    print(f"instructions a {kind} request ({done.stdout.strip()}): {total / options.requests / 1e6:.2f} M")


def counted(requests: int, stream: bool) -> None:
    os.environ.setdefault("LLMHUB_DB_CONN_MAX_AGE", "60")  # as the hub keeps PostgreSQL connections
    with api_cpu.hub_in_process("llmhub-instructions-", stream) as (application, body, key):
        asyncio.run(_requests(application, body, key, requests))
        print(api_cpu.database())


async def _requests(app, body: bytes, key: str, requests: int) -> None:
    for _ in range(WARM_UP):
        assert await api_cpu.request(app, body, key) == 200
    _callgrind("on")
    for _ in range(requests):
        assert await api_cpu.request(app, body, key) == 200
    _callgrind("off")


def _callgrind(state: str) -> None:
    subprocess.run(
        ["callgrind_control", "-i", state, str(os.getpid())], check=True, stdout=subprocess.DEVNULL
    )


if __name__ == "__main__":
    main()
