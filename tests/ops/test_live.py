"""Two server processes of one LLMHub, as production runs it: metrics summed across them, request ids,
JSON log lines without a secret in them, and retention done by the servers themselves."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import httpx
import openai
import pytest
from django.utils import timezone

from gateway import keys
from tests.conftest import GOOD_KEYS
from tests.ops.conftest import METRICS_TOKEN, value
from usage.models import FallbackPolicy, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [{"role": "user", "content": "Say hello."}]
COMPLETED = {"provider": "openai", "model": "gpt-4o-mini", "outcome": "completed"}


@pytest.fixture
def api_key(alpha, openai_provider):
    FallbackPolicy.objects.create(team=alpha, enabled=False, retry_count=0)
    return keys.create(alpha, "ci summarizer")


def scrape(url: str) -> str:
    response = httpx.get(f"{url}/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}, timeout=20)
    assert response.status_code == 200, response.text
    return response.text


def sdk(url: str, secret: str, request_id: str | None = None) -> openai.OpenAI:
    headers = {"x-request-id": request_id} if request_id else None
    return openai.OpenAI(
        base_url=f"{url}/v1", api_key=secret, max_retries=0, timeout=20, default_headers=headers
    )


def test_each_process_reports_the_runs_of_both(hubs, api_key):
    before = [value(scrape(url), "llmhub_runs_total", **COMPLETED) for url in hubs.urls]
    for url in hubs.urls:
        sdk(url, api_key.secret).chat.completions.create(model="openai/gpt-4o-mini", messages=ASK)
    after = [value(scrape(url), "llmhub_runs_total", **COMPLETED) for url in hubs.urls]
    assert after[0] == after[1] == before[0] + 2
    assert httpx.get(f"{hubs.urls[0]}/metrics", timeout=20).status_code == 401  # the token is required


def test_a_clients_request_id_is_echoed_and_kept_on_the_run_and_its_usage_row(hubs, api_key):
    request_id = f"ci-job-{uuid.uuid4().hex[:8]}.1"
    raw = sdk(hubs.urls[0], api_key.secret, request_id).chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=ASK
    )
    assert raw.headers["x-request-id"] == request_id
    run = Run.objects.get(request_id=request_id)
    assert (
        run.api_key == api_key.key and UsageRecord.objects.get(run_id=str(run.uuid)).request_id == request_id
    )
    for insane in ('"><script>alert(1)</script>', "x" * 129):
        made_up = httpx.get(f"{hubs.urls[1]}/healthz", headers={"x-request-id": insane}, timeout=20)
        assert made_up.headers["x-request-id"] != insane and len(made_up.headers["x-request-id"]) == 32


def lines_of(hubs, request_id: str, event: str, count: int = 1, seconds: float = 10) -> list[dict]:
    """The JSON log lines of one request id and kind, once `count` are there (an API request's
    lines are written just after its answer is sent: llmhub/afterwards.py)."""
    deadline = time.monotonic() + seconds
    while True:
        found = [
            entry
            for entry in map(json.loads, hubs.log_lines())
            if entry.get("request_id") == request_id and entry.get("event") == event
        ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_json_logs_carry_a_line_per_request_and_per_run_and_no_secret(hubs, api_key, fake_openai):
    request_id = f"logs-{uuid.uuid4().hex[:8]}"
    client = sdk(hubs.urls[1], api_key.secret, request_id)
    for _ in client.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, stream=True):
        pass  # read to the end: the run has settled (and logged) before the next request starts
    # A hostile upstream echoes the provider key and the caller's Authorization header in its error.
    echo = (
        f"Invalid request from key {GOOD_KEYS['openai']} with header Authorization: Bearer {api_key.secret}"
    )
    fake_openai.fail_next(400, body={"error": {"message": echo, "type": "invalid_request_error"}})
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK)
    with pytest.raises(openai.AuthenticationError):
        sdk(hubs.urls[1], "llmh-" + "wrong" * 8, request_id).models.list()

    [run_line, *_] = lines_of(hubs, request_id, "run")
    assert run_line["level"] == "INFO" and run_line["logger"] == "llmhub.runs"
    assert run_line["team"] == "Alpha" and run_line["api_key"] == api_key.key.masked
    assert (run_line["provider"], run_line["model"], run_line["status"]) == (
        "openai",
        "gpt-4o-mini",
        "completed",
    )
    assert run_line["input_tokens"] > 0 and run_line["output_tokens"] > 0 and float(run_line["cost_usd"]) > 0
    assert run_line["duration_ms"] >= run_line["time_to_first_token_ms"] >= 0
    assert Run.objects.filter(uuid=run_line["run_id"], request_id=request_id).exists()
    statuses = sorted(line["status"] for line in lines_of(hubs, request_id, "request", count=3))
    assert statuses == [200, 401, 502]
    every = hubs.log_lines()
    assert all(isinstance(json.loads(line), dict) for line in every)  # a log collector reads every line
    text = "\n".join(every)
    for secret in (GOOD_KEYS["openai"], api_key.secret, "wrong" * 8):
        assert secret not in text


def test_the_servers_clear_old_run_text_on_their_own(hubs, alice, alpha):
    old = Run.objects.create(
        team=alpha,
        user=alice,
        model_requested="openai/gpt-4o",
        max_tokens=10,
        status=Run.Status.COMPLETED,
        messages=[{"role": "user", "content": "an old secret plan"}],
        output="the old answer",
    )
    Run.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=3))
    for url in hubs.urls:  # the first request starts each server's periodic jobs
        httpx.get(f"{url}/healthz", timeout=20)
    deadline = time.monotonic() + 20
    while Run.objects.get(pk=old.pk).output and time.monotonic() < deadline:
        time.sleep(0.2)
    old.refresh_from_db()
    assert (old.output, old.messages, old.status) == ("", [], Run.Status.COMPLETED)
