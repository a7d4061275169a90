"""The server runs daphne, and Twisted's reactor under it, on uvloop's event loop; LLMHUB_EVENT_LOOP=
asyncio keeps asyncio's own (llmhub/event_loop.py). The loop is read from the running objects, so a
switch that silently does nothing fails here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers import server_at

ROOT = Path(__file__).resolve().parents[2]

# What a server process does at import (llmhub/server.py), then the loop Twisted's reactor runs on.
REACTOR_LOOP = """
from llmhub import server
from twisted.internet import reactor
for loop in (reactor._asyncioEventloop, server.daphne_server.twisted_loop):
    print(type(loop).__module__.split(".")[0])  # uvloop.Loop, asyncio.unix_events._UnixSelectorEventLoop
"""


def loop_of_a_fresh_server(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "LLMHUB_EVENT_LOOP"}
    environment |= {"LLMHUB_DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "llmhub.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", REACTOR_LOOP], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def test_the_served_process_runs_on_uvloop(hub_url):
    assert httpx.get(f"{hub_url}/healthz").status_code == 200
    assert ", uvloop event loop (SIGTERM drains" in server_at(hub_url).log()


@pytest.mark.parametrize(
    ("setting", "library"), [(None, "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")]
)
def test_llmhub_event_loop_chooses_the_loop_twisted_runs_on(tmp_path, setting, library):
    done = loop_of_a_fresh_server(tmp_path, **({"LLMHUB_EVENT_LOOP": setting} if setting else {}))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [library, library]


def test_an_unknown_event_loop_is_refused_by_name(tmp_path):
    done = loop_of_a_fresh_server(tmp_path, LLMHUB_EVENT_LOOP="trio")
    assert done.returncode != 0
    assert "LLMHUB_EVENT_LOOP must be uvloop or asyncio; got 'trio'" in done.stderr
