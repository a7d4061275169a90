"""The API when the database cannot be written: a 503 in OpenAI's error shape with retry-after, never
Django's HTML 500; and the request after the database is back is served as usual."""

from __future__ import annotations

import json
import time

import pytest
from django.test import AsyncClient

from gateway import keys
from providers.base import Message
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.database_faults import writes_refused
from usage import records, runs, spool
from usage.models import FallbackPolicy, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [{"role": "user", "content": "Say hello."}]


@pytest.fixture
def secret(alpha, fake_openai):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    FallbackPolicy.objects.create(team=alpha, enabled=False, retry_count=0)
    return keys.create(alpha, "ci").secret


async def ask(secret: str, stream: bool = False):
    body = {"model": "openai/gpt-4o-mini", "messages": ASK, "max_tokens": 20, "stream": stream}
    headers = {"authorization": f"Bearer {secret}"}
    return await AsyncClient().post(
        "/v1/chat/completions", json.dumps(body), content_type="application/json", headers=headers
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_a_database_that_cannot_be_written_is_a_503_with_retry_after(secret, database_faults, stream):
    async with writes_refused():
        refused = await ask(secret, stream)
    assert refused.status_code == 503 and refused["content-type"] == "application/json"
    assert refused["retry-after"] == "5"
    error = refused.json()["error"]
    assert error["code"] == "database_unavailable" and error["type"] == "api_error"
    assert error["message"].startswith("The database is busy or unavailable, so the budget cannot be checked")
    answered = await ask(secret, stream)
    assert answered.status_code == 200
    if stream:
        assert b"data: [DONE]" in b"".join([chunk async for chunk in answered.streaming_content])
    assert await UsageRecord.objects.acount() == 1


def test_the_server_writes_spooled_settlements_in_the_background(alice, alpha, secret, hub_url):
    """A settlement spooled by another process of the same data folder (say, one that stopped
    before the database came back) is written by the running server within its replay period."""
    run = runs.create_run(alice, alpha, "openai/gpt-4o-mini", [Message("user", "Hi")], 20)
    run.status, run.input_tokens, run.output_tokens = Run.Status.COMPLETED, 9, 20
    records.postpone(run)
    deadline = time.monotonic() + 20
    while not UsageRecord.objects.filter(run_id=str(run.uuid)).exists():
        assert time.monotonic() < deadline, "the server did not replay the spool"
        time.sleep(0.1)
    assert spool.pending() == 0
    assert Run.objects.get(pk=run.pk).status == Run.Status.COMPLETED
