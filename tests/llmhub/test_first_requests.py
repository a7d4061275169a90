"""A fresh server's first API requests pay nothing its start can pay instead (llmhub/warm.py).

A first burst at a fresh server waited for what its first request set up on the event loop: the
URLconf and every view module (the API's brings the Redis client), four TLS contexts for the two
provider pools, anyio's back end (100 concurrent requests at a fresh process each took 1.6 to 2.7 s
in tests/scale). Checked here from what the server imports once it listens (python -X importtime):
deterministic, where a time on a loaded machine is not. Only the tokenizer is left to the first
count: loaded at start it would hold 47 MB of an idle server (tests/llmhub/test_memory.py)."""

from __future__ import annotations

import time

import httpx
import pytest

from gateway import keys
from providers import network
from providers.http import shared_transport
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.servers import Server

# The tokenizer's modules (loaded at the first count, by design), and the run recovery the server
# starts as it starts serving, before its first connection.
LEFT_TO_FIRST_USE = {"tiktoken", "tiktoken_ext", "usage.bpe", "regex", "marisa_trie", "usage.recovery"}


def imported_after(log: str, marker: str) -> set[str]:
    """The modules a server imported after the log line holding `marker` (-X importtime's lines)."""
    after = log.split(marker, 1)[1]
    return {line.rsplit("|", 1)[1].strip() for line in after.splitlines() if line.startswith("import time:")}


def left_to_first_use(module: str) -> bool:
    return module in LEFT_TO_FIRST_USE or module.split(".")[0] in LEFT_TO_FIRST_USE


@pytest.mark.django_db(transaction=True)
def test_a_fresh_server_imports_nothing_but_the_tokenizer_for_its_first_requests(alpha, fake_openai):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    auth = {"authorization": f"Bearer {keys.create(alpha, 'first').secret}"}
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16}
    server = Server("first-requests", PYTHONPROFILEIMPORTTIME="1")
    try:
        with httpx.Client(base_url=server.url, headers=auth, timeout=60) as client:
            assert client.post("/v1/chat/completions", json=body).status_code == 200
            assert client.post("/v1/chat/completions", json=body | {"stream": True}).status_code == 200
            assert client.get("/v1/models").status_code == 200
        time.sleep(0.2)  # the last lines written
        imported = imported_after(server.log(), "Listening on TCP address")
    finally:
        server.stop()
    assert "tiktoken" in imported  # the check sees the server's imports: the tokenizer's, at the first count
    assert sorted(name for name in imported if not left_to_first_use(name)) == []


async def test_every_provider_pool_uses_the_processs_one_tls_context():
    """Built once, before the server serves: parsing the CA bundle costs ~35 ms of CPU each time."""
    contexts = {shared_transport(private).session.connector._ssl for private in (False, True)}
    assert contexts == {network.tls_context()}
