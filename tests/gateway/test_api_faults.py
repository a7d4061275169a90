"""/v1/ under every fault: a JSON error in OpenAI's shape, or an SSE stream that ends with an error
event, never an HTML page; the run ends settled, the cap holds, the reservation covers the charge."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import httpx
import pytest

from gateway import keys
from providers.registry import registry
from tests.conftest import GOOD_KEYS, failing_writes
from tests.fakes.server import sse
from tests.servers import server_at
from usage import tokens
from usage.models import Budget, FallbackPolicy, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [{"role": "user", "content": "Say something."}]


@pytest.fixture
def hub(alpha, fake_openai, fake_anthropic):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=fake_anthropic.url, team=alpha)
    FallbackPolicy.objects.create(team=alpha, enabled=False, retry_count=0)
    return keys.create(alpha, "faults")


def ask(hub, hub_url, stream: bool, **body) -> httpx.Response:
    payload = {"model": "openai/gpt-4o", "messages": ASK, "max_tokens": 100, "stream": stream, **body}
    headers = {"authorization": f"Bearer {hub.secret}"}
    return httpx.post(f"{hub_url}/v1/chat/completions", json=payload, headers=headers, timeout=30)


def events_of(response: httpx.Response) -> list:
    assert response.headers["content-type"] == "text/event-stream"
    data = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line.startswith("data: ")]
    return [item if item == "[DONE]" else json.loads(item) for item in data]


def text_of(events: list) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or ""
        for e in events
        if isinstance(e, dict) and e.get("choices")
    )


def json_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json" and "<" not in response.text
    return response.json()["error"]


def sse_error(response: httpx.Response) -> tuple[str, dict]:
    """A stream that began: its text, then an error event as its last event (no [DONE])."""
    assert response.status_code == 200 and "<html" not in response.text.lower()
    events = events_of(response)
    assert "error" in events[-1] and "[DONE]" not in events
    return text_of(events), events[-1]["error"]


def break_upstream(fake, fault: str) -> None:
    if fault == "wrong-shape JSON":
        fake.stream_raw_next([sse({"choices": "none"}), sse("[DONE]")])
    elif fault == "bad gzip":
        fake.stream_raw_next([b"not gzip" * 20], headers={"content-encoding": "gzip"})
    elif fault == "HTML 200":
        fake.reply_raw_next(b"<html><body>Proxy login</body></html>", content_type="text/html")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("wrong-shape JSON", "its answer did not have the expected shape"),
        ("bad gzip", "its answer could not be decoded (content-encoding gzip)"),
        ("HTML 200", "it answered with a web page (text/html), not a stream"),
    ],
)
def test_a_broken_answer_before_any_text_is_a_json_502(hub, hub_url, fake_openai, fault, says, stream):
    break_upstream(fake_openai, fault)
    error = json_error(ask(hub, hub_url, stream), 502)
    assert (
        error["message"] == f"Unexpected response from OpenAI: {says}." and error["code"] == "upstream_error"
    )
    run = Run.objects.get()
    assert run.status == Run.Status.FAILED and run.reserved_usd is None


@pytest.mark.parametrize(
    "usage", [{"completion_tokens": -3}, {"completion_tokens": 10**30}, {"prompt_tokens": "x"}]
)
def test_usage_that_is_not_a_count_after_text_ends_the_stream_with_an_error_event(
    hub, hub_url, fake_openai, usage
):
    fake_openai.reported_usage = usage
    text, error = sse_error(ask(hub, hub_url, stream=True))
    assert text == fake_openai.reply_text and "its usage field" in error["message"]
    run = Run.objects.get()
    assert run.status == Run.Status.FAILED and run.output == text and run.reserved_usd is None
    assert UsageRecord.objects.get().output_tokens == tokens.count_text(text, "gpt-4o", "openai")
    json_error(ask(hub, hub_url, stream=False), 502)


def test_a_settlement_the_database_refuses_is_a_503_or_an_error_event(hub, hub_url, fake_openai):
    with failing_writes("usage_usagerecord"):
        error = json_error(ask(hub, hub_url, stream=False), 503)
        assert error["code"] == "usage_not_recorded"
        streamed = ask(hub, hub_url, stream=True)
    text, error = sse_error(streamed)
    assert text == fake_openai.reply_text and error["code"] == "usage_not_recorded"
    assert not UsageRecord.objects.exists()


def test_an_exception_in_the_hub_is_a_json_500_and_logged(hub, hub_url, alpha):
    FallbackPolicy.objects.filter(team=alpha).update(enabled=True, order=[42])  # a row no form would save
    for stream in (False, True):
        error = json_error(ask(hub, hub_url, stream), 500)
        assert error["code"] == "internal_error" and error["type"] == "server_error"
    assert all(run.status == Run.Status.FAILED and run.reserved_usd is None for run in Run.objects.all())
    log = server_at(hub_url).log()
    assert "failed inside the hub" in log and "Traceback" in log


@pytest.mark.parametrize("stream", [False, True])
def test_a_budget_refusal_falls_back(hub, hub_url, alpha, fake_anthropic, stream):
    FallbackPolicy.objects.filter(team=alpha).update(enabled=True, order=["anthropic/claude-haiku-4-5"])
    Budget.objects.create(team=alpha, provider_id="openai", monthly_limit_usd=Decimal("0"))
    response = ask(hub, hub_url, stream)
    assert response.status_code == 200
    text = text_of(events_of(response)) if stream else response.json()["choices"][0]["message"]["content"]
    assert text == fake_anthropic.reply_text


@pytest.mark.parametrize("stream", [False, True])
def test_the_client_never_receives_text_past_the_cap(hub, hub_url, fake_openai, stream):
    fake_openai.one_chunk, fake_openai.ignore_max_tokens = True, True
    fake_openai.reply_text = "word " * 20_000
    response = ask(hub, hub_url, stream, max_tokens=64)
    if stream:
        events = events_of(response)
        text, reason = text_of(events), [e for e in events if isinstance(e, dict) and e.get("choices")][-1]
        assert reason["choices"][0]["finish_reason"] == "length" and events[-1] == "[DONE]"
    else:
        text = response.json()["choices"][0]["message"]["content"]
        assert response.json()["choices"][0]["finish_reason"] == "length"
    assert tokens.count_text(text, "gpt-4o", "openai") == 64
    run = Run.objects.get()
    assert run.cost_usd <= run.max_cost_usd and run.output_tokens == 64


def test_djangos_own_error_pages_are_json_under_v1(hub, hub_url):
    refused = httpx.get(f"{hub_url}/v1/models", headers={"host": "evil.example"})
    assert json_error(refused, 400)["code"] == "invalid_request"

    def chunks():  # no content-length: the body is only found too large as it is read
        for _ in range(10):
            yield b"x" * (1024 * 1024)

    headers = {"authorization": f"Bearer {hub.secret}", "content-type": "application/json"}
    huge = httpx.post(f"{hub_url}/v1/chat/completions", content=chunks(), headers=headers, timeout=30)
    assert huge.status_code in (400, 413) and huge.headers["content-type"] == "application/json"
    assert "<" not in huge.text
    assert httpx.get(f"{hub_url}/v1/nothing/here").headers["content-type"] == "application/json"


def test_a_gzip_answer_that_is_really_gzip_works(hub, hub_url, fake_openai):
    body = sse({"choices": [{"index": 0, "delta": {"content": "zipped"}}]}) + sse("[DONE]")
    fake_openai.stream_raw_next([gzip.compress(body)], headers={"content-encoding": "gzip"})
    assert ask(hub, hub_url, stream=False).json()["choices"][0]["message"]["content"] == "zipped"


def test_a_run_the_database_cannot_write_is_a_503_with_retry_after(hub, hub_url, alpha, fake_openai):
    """The API's run is first written with its reservation, in one INSERT: refused, nothing is sent."""
    Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("5"))
    with failing_writes("usage_run", "INSERT"):
        for stream in (False, True):
            response = ask(hub, hub_url, stream)
            assert json_error(response, 503)["code"] == "database_unavailable"
            assert response.headers["retry-after"] == "5"
    assert not [r for r in fake_openai.requests if r.path.endswith("/chat/completions")]
