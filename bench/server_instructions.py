"""Instructions the whole server executes for one /v1/chat/completions request, counted by valgrind's
callgrind: the hub as `make run` serves it (llmhub/serve.py: daphne and Twisted on the event loop,
the hop threads, the log lines), every thread of the process, over the measured requests only,
after a warm-up. The load and the set-up are bench/gateway.py's (the fake upstream in a process of
its own, not counted; SQLite in a fresh data folder).

    .venv/bin/python bench/server_instructions.py [--requests 100] [--concurrency 1] [--stream]
        [--tree /work/wt/base30] [--out callgrind.out]

Why: bench/instructions.py counts the ASGI application alone, in-process; what daphne and Twisted
do around it, the wake-ups of the loop by the hop threads and the writes of the log lines, it
cannot see. This counts them too. `--tree` serves another copy of the code (its own set-up and
server; compare copies at paths of the same length, as bench/instructions.py says).

Under valgrind the threads of the process take turns (one runs at a time), so at concurrency 16
this shows the extra work of interleaved requests (more wake-ups, more rounds of the loop, lock
hand-offs), not the cost of two cores fighting over the GIL. A run of 100 requests takes about 30 s
and repeats within about 0.3 % (10.46 M and 10.47 M a request at f4753ed; 12.09 M and 12.11 M at
concurrency 16 with 160 requests). At concurrency 16 the count depends on how the requests overlap,
so on the machine's load: with a test suite running beside it, the same tree counted 12.19 and 11.58 M;
compare such runs alternated, under the same load. At 16, httpcore's pool scans its connections
several times a request (is_idle ~500 calls a request, from 5 at concurrency 1): ~0.95 M of the 1.6 M
a request that concurrency 16 adds (measured with the scan made linear, issue 16's i23-fr notes).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# bench/gateway.py, under another name than the hub's own `gateway` app.
_spec = importlib.util.spec_from_file_location("gateway_bench", Path(__file__).with_name("gateway.py"))
bench = sys.modules["gateway_bench"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)
WARM_UP = 60
MODEL = "openai/gpt-4o-mini"
# The set-up, run by the served tree's own code (its bench/gateway.py and migrations).
SET_UP = (
    "import importlib.util, sys; spec = importlib.util.spec_from_file_location('g', 'bench/gateway.py'); "
    "g = sys.modules['g'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(g); print(g.set_up(*sys.argv[1:3]))"
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--tree", type=Path, default=bench.ROOT, help="the copy of LLMHub to serve")
    parser.add_argument("--out", help="keep callgrind's profile in this file (for callgrind_annotate)")
    options = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("bench/server_instructions.py needs valgrind (Debian: apt-get install valgrind).")
    tree = options.tree.resolve()
    python = str(tree / ".venv" / "bin" / "python")
    data = Path(tempfile.mkdtemp(prefix="llmhub-server-instructions-"))
    up_port, hub_port = bench.free_port(), bench.free_port()
    upstream = bench.start_upstream(up_port)
    try:
        env = {**os.environ, "LLMHUB_DATA_DIR": str(data), "DJANGO_SETTINGS_MODULE": "llmhub.settings"}
        url = f"http://127.0.0.1:{up_port}/v1"
        done = subprocess.run(
            [python, "-c", SET_UP, str(data), url], cwd=tree, env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"the set-up failed:\n{done.stderr[-2000:]}")
        key = done.stdout.strip().splitlines()[-1]
        total = count(python, tree, env | {"PYTHONHASHSEED": "0"}, data, hub_port, key, options)
    finally:
        upstream.terminate()
        upstream.wait(10)
        shutil.rmtree(data, ignore_errors=True)
    kind = "streaming" if options.stream else "non-streaming"
    print(
        f"whole-server instructions a {kind} request ({tree}, concurrency {options.concurrency}, "
        f"{options.requests} requests): {total / options.requests / 1e6:.3f} M"
    )


def count(python: str, tree: Path, env: dict, data: Path, port: int, key: str, options) -> int:
    """The server under callgrind, counting only while the measured requests are sent."""
    log = data / "valgrind.log"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",  # switched on around the measured requests only
        f"--callgrind-out-file={options.out or '/dev/null'}",
        f"--log-file={log}",
        python,
        "-m",
        "llmhub.serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with open(data / "server.log", "wb") as output:
        server = subprocess.Popen(command, cwd=tree, env=env, stdout=output, stderr=output)
    try:
        _wait_for(port, server)
        hub = f"http://127.0.0.1:{port}/v1"
        concurrency = options.concurrency
        _load(hub, key, concurrency, WARM_UP, options.stream)
        _callgrind("on", server.pid)
        _load(hub, key, concurrency, options.requests, options.stream)
        _callgrind("off", server.pid)
    finally:
        _stop(server, data)
    found = re.search(r"Collected\s*:\s*(\d+)", log.read_text())
    if found is None:
        raise SystemExit(f"valgrind failed:\n{log.read_text()[-2000:]}")
    return int(found.group(1))


def _stop(server: subprocess.Popen, data: Path) -> None:
    """SIGTERM: the drain, then valgrind's totals in its log. Once in about ten runs under valgrind
    the drain never ended (not seen without valgrind); a second SIGTERM stops the server at once,
    and the totals are written all the same."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(90)
    except subprocess.TimeoutExpired:
        tail = (data / "server.log").read_text(errors="replace")[-1000:]
        print(
            f"the drain did not end in 90 s; stopping it. The server's last lines:\n{tail}", file=sys.stderr
        )
        server.send_signal(signal.SIGTERM)
        server.wait(60)


def _load(hub: str, key: str, concurrency: int, requests: int, stream: bool) -> None:
    result = asyncio.run(bench.load(hub, key, MODEL, concurrency, requests, stream=stream))
    if result.errors or len(result.latencies) != requests:
        raise SystemExit(f"{len(result.errors)} request(s) failed: {result.errors[:3]}")


def _wait_for(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180  # start-up under valgrind is ~50 times slower
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: status {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not start on port {port}")


def _callgrind(state: str, pid: int) -> None:
    subprocess.run(["callgrind_control", "-i", state, str(pid)], check=True, capture_output=True)


if __name__ == "__main__":
    main()
