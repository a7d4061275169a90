"""Upstream connections are reused from one run to the next: a provider's stream is read to the end
of its body before its last event ends the run, so the hub's pool keeps the connection, and a real
provider is not paid a TCP and TLS handshake per request. A provider that keeps its body open after
its last event costs at most a short, bounded wait, never the answer."""

from __future__ import annotations

import itertools
import time
import uuid
from decimal import Decimal

import httpx
import pytest
from genai_prices import Usage, calc_price

from providers.http import DRAIN_SECONDS
from tests.fakes.server import sse
from tests.gateway.conftest import EVERY_KIND
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [{"role": "user", "content": "Say hello."}]
RUNS = 4


def complete(hub_url: str, secret: str, model: str, stream: bool) -> httpx.Response:
    body = {"model": model, "messages": ASK, "max_tokens": 64, "stream": stream}
    headers = {"authorization": f"Bearer {secret}"}
    response = httpx.post(f"{hub_url}/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("kind", sorted(EVERY_KIND))
def test_runs_one_after_another_use_one_upstream_connection(hub_url, api_key, every_kind, kind, stream):
    fake = every_kind[kind]
    complete(hub_url, api_key.secret, EVERY_KIND[kind], stream)
    opened = fake.connections  # the hub's first (and, with other clients, not the only) connection
    for _ in range(RUNS - 1):
        complete(hub_url, api_key.secret, EVERY_KIND[kind], stream)
    assert fake.connections == opened


def test_openai_sdk_runs_use_one_upstream_connection(sdk, every_kind):
    fake = every_kind["openai"]
    sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK)
    opened = fake.connections
    for _ in range(RUNS - 1):
        sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK)
        list(sdk.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, stream=True))
    assert fake.connections == opened


def answer_then(after: itertools.chain | list[bytes]) -> itertools.chain:
    """OpenAI's stream of "Hello." with its usage and [DONE], then whatever comes after."""
    delta = {"choices": [{"index": 0, "delta": {"content": "Hello."}, "finish_reason": None}]}
    finish = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}}
    return itertools.chain([sse(delta), sse(finish), sse(usage), sse("[DONE]")], after)


@pytest.mark.parametrize(
    ("after", "every"),
    [
        (itertools.repeat(b": still here\n\n"), 0.05),  # the body kept open: the time bound
        (itertools.repeat(b"data: junk after the end\n\n"), 0.0),  # a flood: the size bound
    ],
    ids=["kept open", "junk"],
)
def test_a_body_kept_open_after_done_costs_a_bounded_wait_not_the_answer(
    hub_url, api_key, every_kind, after, every
):
    fake = every_kind["openai"]
    complete(hub_url, api_key.secret, "openai/gpt-4o-mini", False)  # a pooled connection to begin with
    fake.stream_raw_next(answer_then(after), every=every)
    started = time.monotonic()
    answer = complete(hub_url, api_key.secret, "openai/gpt-4o-mini", False).json()
    # Far below any read timeout (the provider's is minutes), with room for a loaded machine.
    assert time.monotonic() - started < DRAIN_SECONDS + 3
    assert answer["choices"][0]["message"]["content"] == "Hello."
    row = UsageRecord.objects.get(run_id=str(uuid.UUID(answer["id"].removeprefix("chatcmpl-"))))
    assert answer["usage"]["completion_tokens"] == row.output_tokens == 3
    assert answer["usage"]["prompt_tokens"] == row.input_tokens > 0
    counted = Usage(input_tokens=row.input_tokens, output_tokens=row.output_tokens)
    assert row.cost_usd == Decimal(str(calc_price(counted, "gpt-4o-mini", provider_id="openai").total_price))
    # That connection was closed, not handed to the next run; the next run works and is pooled.
    opened = fake.connections
    for _ in range(2):
        assert complete(hub_url, api_key.secret, "openai/gpt-4o-mini", True).status_code == 200
    assert fake.connections == opened + 1
