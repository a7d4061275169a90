"""Cancel is addressed to the run: a socket of another server process behind the same Redis stops
it, as the owner's other tab would."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from gateway import keys
from providers.base import Message
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.redis_server import redis_server
from tests.run_sockets import CANCEL, START, cancel_from_elsewhere, socket_to
from tests.servers import Server, free_port
from usage import runs
from usage.models import Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def test_a_cancel_from_another_server_process_stops_the_run(
    redis_url, alice, alpha, alice_client, fake_openai
):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    run = runs.create_run(alice, alpha, "openai/gpt-4o-mini", [Message("user", "A long story")], 2000)
    fake_openai.reply_text = "word " * 2000
    fake_openai.chunk_delay = 0.01
    first, second = Server("cancel/a", REDIS_URL=redis_url), Server("cancel/b", REDIS_URL=redis_url)
    try:
        cancel_from_elsewhere(first, second, run, alice_client)
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
    try:  # both sockets idle past the socket timeout, then the run streams past it too
        cancel_from_elsewhere(first, second, run, alice_client, idle=6.5, streaming=6.5)
    finally:
        first.stop()
        second.stop()
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and run.reserved_usd is None
    assert 0 < run.output_tokens < 2000
    assert "Timeout reading" not in first.log() + second.log()


def commands(url: str) -> int:
    """Commands Redis has run since it started (INFO's total_commands_processed)."""
    with redis.Redis.from_url(url) as client:
        return int(client.info("stats")["total_commands_processed"])


def shut_down(url: str) -> bool:
    """Stop Redis now (SHUTDOWN NOSAVE), as a crash would."""
    with redis.Redis.from_url(url) as client:
        client.shutdown(nosave=True)
    return True


def test_an_api_request_costs_the_channel_layer_no_redis_command(redis_url, alpha, fake_openai):
    """A run listens for a cancel through its process's one listener: it joins no group, makes no
    channel and waits on none of its own (each a Redis round trip, and a wait at its end)."""
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    secret = keys.create(alpha, "nightly").secret
    server = Server("cancel/commands", REDIS_URL=redis_url)
    try:
        auth = {"authorization": f"Bearer {secret}"}
        body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
            assert client.post("/v1/chat/completions", json=body).status_code == 200  # the listener joins
            before = commands(redis_url)
            for _ in range(20):
                assert client.post("/v1/chat/completions", json=body).status_code == 200
            during = commands(redis_url) - before
    finally:
        server.stop()
    # Only the listener's own wait, renewed every 5 s (two commands), however slow the machine: fewer
    # than one command a request (it was eight).
    assert during < 20, during


def test_cancels_reach_runs_again_once_redis_is_back(alice, alpha, alice_client, fake_openai):
    """Redis restarted (its groups lost): each process's listener joins again by itself."""
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    fake_openai.reply_text = "word " * 2000
    port, first, second = free_port(), None, None
    try:
        with redis_server(port) as url:
            first, second = Server("cancel/again-a", REDIS_URL=url), Server("cancel/again-b", REDIS_URL=url)
            before = runs.create_run(alice, alpha, "openai/gpt-4o-mini", [Message("user", "Hi")], 5)
            with socket_to(first, before, alice_client) as socket:  # the first server's listener starts
                socket.send(START)
                while "Completed" not in socket.recv(timeout=10):
                    pass
        time.sleep(1.5)  # Redis is down: the listener fails and tries again
        with redis_server(port):
            fake_openai.chunk_delay = 0.01
            run = runs.create_run(alice, alpha, "openai/gpt-4o-mini", [Message("user", "A story")], 2000)
            deadline = time.monotonic() + 10
            while "Listening for cancels from other processes again" not in first.log():
                assert time.monotonic() < deadline, first.log()[-2000:]
                time.sleep(0.1)
            cancel_from_elsewhere(first, second, run, alice_client)
            logged = first.log()  # before Redis stops again
    finally:
        for server in (first, second):
            if server is not None:
                server.stop()
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and run.reserved_usd is None
    assert logged.count("Cannot listen for cancels from other processes") == 1  # once an outage


def test_a_browser_run_goes_on_while_redis_is_down(alice, alpha, alice_client, fake_openai):
    """A page's socket needs Redis only to send a cancel to another process: while Redis is down
    its run streams to the end, and a cancel it cannot send is said on the page."""
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    fake_openai.reply_text = "word " * 600
    fake_openai.chunk_delay = 0.005
    elsewhere_run = runs.create_run(alice, alpha, "openai/gpt-4o-mini", [Message("user", "Hi")], 5)
    run = runs.create_run(alice, alpha, "openai/gpt-4o-mini", [Message("user", "A story")], 700)
    with redis_server() as url:
        server = Server("cancel/redis-down", REDIS_URL=url)
        try:
            with (
                socket_to(server, run, alice_client) as socket,
                socket_to(server, elsewhere_run, alice_client) as other,
            ):
                socket.send(START)
                while 'hx-swap-oob="beforeend"' not in socket.recv(timeout=10):
                    pass
                redis_down = shut_down(url)
                frames = ""
                while "Completed" not in frames:
                    frames += socket.recv(timeout=20)
                other.send(CANCEL)  # runs nowhere: to Redis
                assert "could not be sent" in other.recv(timeout=20)
        finally:
            server.stop()
    run.refresh_from_db()
    assert redis_down and run.status == Run.Status.COMPLETED and run.output == fake_openai.reply_text
