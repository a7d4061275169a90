"""Cancel is addressed to the run: a socket of another server process behind the same Redis stops
it, as the owner's other tab would."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from websockets.sync.client import connect

from providers.base import Message
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.servers import Server, free_port, listening
from usage import runs
from usage.models import Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_url(tmp_path) -> Iterator[str]:
    """A throwaway redis-server on a free port, stopped by its PID afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    options = [
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    process = subprocess.Popen([binary, *options], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def socket_to(server: Server, run: Run, client):
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    url = f"ws://127.0.0.1:{server.port}/ws/runs/{run.uuid}/"
    return connect(url, additional_headers={"cookie": cookie, "origin": server.url})


def test_a_cancel_from_another_server_process_stops_the_run(
    redis_url, alice, alpha, alice_client, fake_openai
):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    run = runs.create_run(alice, alpha, "openai/gpt-4o-mini", [Message("user", "A long story")], 2000)
    fake_openai.reply_text = "word " * 2000
    fake_openai.chunk_delay = 0.01
    first, second = Server("cancel/a", REDIS_URL=redis_url), Server("cancel/b", REDIS_URL=redis_url)
    try:
        with (
            socket_to(first, run, alice_client) as running,
            socket_to(second, run, alice_client) as elsewhere,
        ):
            running.send(json.dumps({"action": "start", "HEADERS": {}}))
            while 'hx-swap-oob="beforeend"' not in running.recv(timeout=10):
                pass
            elsewhere.send(json.dumps({"action": "cancel", "HEADERS": {}}))
            frame = ""
            while "Cancelled by alice." not in frame:
                frame = running.recv(timeout=10)
    finally:
        first.stop()
        second.stop()
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and 0 < len(run.output) < len(fake_openai.reply_text)
    assert run.reserved_usd is None
    assert UsageRecord.objects.get(run_id=str(run.uuid)).output_tokens == run.output_tokens > 0


def test_a_run_longer_than_the_redis_socket_timeout_is_still_cancelled_from_another_process(
    redis_url, alice, alpha, alice_client, fake_openai
):
    """redis-py 8 gives every connection a 5 s socket timeout, as long as channels_redis's blocking
    wait for a message: a socket, or a run listening for a cancel, must outlive it."""
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    run = runs.create_run(alice, alpha, "openai/gpt-4o-mini", [Message("user", "A long story")], 2000)
    fake_openai.reply_text = "word " * 2000
    fake_openai.chunk_delay = 0.02  # ~40 s to the end
    first, second = Server("cancel/long-a", REDIS_URL=redis_url), Server("cancel/long-b", REDIS_URL=redis_url)
    try:
        with (
            socket_to(first, run, alice_client) as running,
            socket_to(second, run, alice_client) as elsewhere,
        ):
            time.sleep(6.5)  # both sockets idle past the socket timeout
            running.send(json.dumps({"action": "start", "HEADERS": {}}))
            started = time.monotonic()
            while time.monotonic() - started < 6.5:  # the run streams past it too
                running.recv(timeout=10)
            elsewhere.send(json.dumps({"action": "cancel", "HEADERS": {}}))
            frame = ""
            while "Cancelled by alice." not in frame:
                frame = running.recv(timeout=10)
    finally:
        first.stop()
        second.stop()
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and run.reserved_usd is None
    assert 0 < run.output_tokens < 2000
    assert "Timeout reading" not in first.log() + second.log()
