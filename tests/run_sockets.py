"""A run page's websocket on a real server process (tests/servers.py), as the browser opens it:
starting a run on one server and cancelling it from another."""

from __future__ import annotations

import json
import time

from websockets.sync.client import connect

from tests.servers import Server
from usage.models import Run


def socket_to(server: Server, run: Run, client):
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    url = f"ws://127.0.0.1:{server.port}/ws/runs/{run.uuid}/"
    return connect(url, additional_headers={"cookie": cookie, "origin": server.url})


START = json.dumps({"action": "start", "HEADERS": {}})
CANCEL = json.dumps({"action": "cancel", "HEADERS": {}})


def cancel_from_elsewhere(
    first: Server, second: Server, run: Run, client, idle: float = 0, streaming: float = 0
):
    """Start the run from a socket of `first` and, once its text flows, cancel it from a socket of
    `second`; returns when the first socket says who cancelled it. `idle`: seconds both sockets wait before the
    start; `streaming`: seconds the run streams before the cancel."""
    with socket_to(first, run, client) as running, socket_to(second, run, client) as elsewhere:
        time.sleep(idle)
        running.send(START)
        while 'hx-swap-oob="beforeend"' not in running.recv(timeout=20):
            pass
        started = time.monotonic()
        while time.monotonic() - started < streaming:
            running.recv(timeout=20)
        elsewhere.send(CANCEL)
        frame = ""
        while "Cancelled by " not in frame:  # from a socket, not a tab closed
            frame = running.recv(timeout=20)
