"""The OpenAI-compatible API, driven by the official `openai` package against the live server:
budgets, fallback, usage rows and the audit log apply as for a run in the browser."""

from __future__ import annotations

import json
import socket
import uuid
from decimal import Decimal

import httpx
import openai
import pytest

from audit.models import AuditEntry
from gateway import keys
from gateway.models import ModelAlias
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage.models import Budget, FallbackPolicy, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hub(alpha, fake_openai, fake_anthropic, fake_gemini, fake_ollama):
    """Team Alpha with four providers, an API key, and a client of the official SDK."""
    for kind, fake in (
        ("openai", fake_openai),
        ("anthropic", fake_anthropic),
        ("gemini", fake_gemini),
        ("ollama", fake_ollama),
    ):
        registry.save(kind, {"api_key": GOOD_KEYS[kind]}, endpoint=fake.url, team=alpha)
    FallbackPolicy.objects.create(team=alpha, enabled=False, retry_count=0)
    return keys.create(alpha, "ci summarizer")


@pytest.fixture
def client(hub, hub_url):
    return openai.OpenAI(base_url=f"{hub_url}/v1", api_key=hub.secret, max_retries=0, timeout=20)


ASK = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello."}]


def test_a_completion_comes_back_in_openais_shape_with_its_usage_recorded(client, hub, fake_openai):
    answer = client.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, max_tokens=50)
    assert answer.choices[0].message.content == fake_openai.reply_text
    assert answer.choices[0].finish_reason == "stop" and answer.model == "openai/gpt-4o-mini"
    row = UsageRecord.objects.get(run_id=str(uuid.UUID(answer.id.removeprefix("chatcmpl-"))))
    assert row.api_key == hub.key
    assert (row.input_tokens, row.output_tokens) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
    )
    assert row.source == "api" and row.cost_usd > 0 and row.team.name == "Alpha"
    assert fake_openai.last_request.body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_a_stream_arrives_in_chunks_and_ends_with_usage(client, hub, fake_openai):
    fake_openai.reply_text = " ".join(f"w{n}" for n in range(30))
    chunks = list(
        client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=ASK, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == fake_openai.reply_text
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 30  # relayed piece by piece
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    row = UsageRecord.objects.get(api_key=hub.key)
    assert row.output_tokens == chunks[-1].usage.completion_tokens


@pytest.mark.parametrize(
    "model", ["anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash", "ollama/llama3.2:latest"]
)
def test_every_provider_kind_answers_in_openais_format(client, model, request):
    fake = request.getfixturevalue(f"fake_{model.partition('/')[0]}")
    answer = client.chat.completions.create(model=model, messages=ASK, max_tokens=50)
    assert answer.choices[0].message.content == fake.reply_text and answer.usage.total_tokens > 0
    streamed = client.chat.completions.create(model=model, messages=ASK, max_tokens=50, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == fake.reply_text


def test_a_budget_refusal_is_a_402_naming_the_budget(client, alpha, fake_openai):
    Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("0"))
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="openai/gpt-4o", messages=ASK, max_tokens=50)
    assert refused.value.status_code == 402
    assert (
        "Monthly Alpha team budget: $0.00 of $0.00 left; this run may cost up to $" in refused.value.message
    )
    assert not [r for r in fake_openai.requests if r.path.endswith("/chat/completions")]


def test_a_key_budget_applies_to_that_key_only(client, hub, alpha, hub_url):
    Budget.objects.create(team=alpha, api_key=hub.key, daily_limit_usd=Decimal("0"))
    with pytest.raises(openai.APIStatusError, match="Daily API key ci summarizer budget") as refused:
        client.chat.completions.create(model="openai/gpt-4o", messages=ASK, max_tokens=50)
    assert refused.value.status_code == 402
    other = keys.create(alpha, "notebook")
    free = openai.OpenAI(base_url=f"{hub_url}/v1", api_key=other.secret, max_retries=0)
    assert free.chat.completions.create(model="openai/gpt-4o", messages=ASK, max_tokens=50).choices


def test_a_bad_or_revoked_key_is_a_401(client, hub, hub_url, alice):
    wrong = openai.OpenAI(base_url=f"{hub_url}/v1", api_key="llmh-not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="openai/gpt-4o", messages=ASK)
    keys.revoke(hub.key, alice)  # in this process; the server is another: it refuses the key at once
    with pytest.raises(openai.AuthenticationError) as refused:
        client.models.list()
    assert hub.secret not in str(refused.value.body)


def test_an_unknown_model_is_a_400_and_a_forbidden_one_a_403(client, hub, hub_url, alpha):
    with pytest.raises(openai.BadRequestError) as unknown:
        client.chat.completions.create(model="openai/gpt-9", messages=ASK)
    assert unknown.value.code == "model_not_found" and "openai/gpt-9" in unknown.value.message
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="no-such-alias", messages=ASK)
    narrow = keys.create(alpha, "narrow", allowed_models=["fast"])
    ModelAlias.objects.create(team=alpha, name="fast", target="openai/gpt-4o-mini")
    scoped = openai.OpenAI(base_url=f"{hub_url}/v1", api_key=narrow.secret, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        scoped.chat.completions.create(model="openai/gpt-4o", messages=ASK)
    assert scoped.chat.completions.create(model="fast", messages=ASK).model == "openai/gpt-4o-mini"
    assert [m.id for m in scoped.models.list()] == ["fast"]


def test_models_lists_refs_default_and_aliases(client, alpha):
    ModelAlias.objects.create(team=alpha, name="fast", target="openai/gpt-4o-mini")
    ids = [m.id for m in client.models.list()]
    assert {
        "openai/gpt-4o-mini",
        "anthropic/claude-haiku-4-5",
        "gemini/gemini-2.5-pro",
        "default",
        "fast",
    } <= set(ids)


def test_a_failing_provider_falls_back_and_the_switch_is_audited(client, alpha, fake_openai, fake_anthropic):
    FallbackPolicy.objects.filter(team=alpha).update(enabled=True, order=["anthropic/claude-haiku-4-5"])
    fake_openai.fail_next_as("server_error")
    answer = client.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, max_tokens=50)
    assert answer.model == "anthropic/claude-haiku-4-5"
    assert answer.choices[0].message.content == fake_anthropic.reply_text
    switch = AuditEntry.objects.get(action="fallback_triggered")
    assert (
        switch.actor_name == "API key ci summarizer" and switch.after["model"] == "anthropic/claude-haiku-4-5"
    )
    run = Run.objects.get()
    assert run.model_used == "anthropic/claude-haiku-4-5" and run.api_key.name == "ci summarizer"


def test_an_upstream_rate_limit_is_a_429_with_retry_after(client, fake_openai):
    fake_openai.fail_next_as("rate_limited")
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK)
    assert limited.value.response.headers["retry-after"] == "7"
    fake_openai.fail_next_as("server_error")
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK)
    assert failed.value.status_code == 502


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 400, "must be a JSON object"),
        (
            json.dumps({"model": "openai/gpt-4o", "messages": []}).encode(),
            400,
            "messages must be a non-empty array",
        ),
        (
            json.dumps({"model": "openai/gpt-4o", "messages": ASK, "tools": [{"type": "function"}]}).encode(),
            400,
            "tools[0]: a function needs a name",
        ),
        (
            json.dumps({"model": "openai/gpt-4o", "messages": ASK, "temprature": 1}).encode(),
            400,
            "Unrecognized request argument supplied: temprature",
        ),
        (
            json.dumps(
                {
                    "model": "openai/gpt-4o",
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
                            ],
                        }
                    ],
                }
            ).encode(),
            400,
            "openai/gpt-4o does not accept audio input",
        ),
        (
            json.dumps(
                {
                    "model": "openai/gpt-4o",
                    "messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}],
                }
            ).encode(),
            400,
            "content parts of type 'video' are not supported",
        ),
        (
            json.dumps({"model": "openai/gpt-4o", "messages": ASK, "max_tokens": 0}).encode(),
            400,
            "max_tokens must be a positive integer",
        ),
    ],
)
def test_malformed_bodies_get_a_clear_400(hub, hub_url, body, status, says):
    response = httpx.post(
        f"{hub_url}/v1/chat/completions",
        content=body,
        headers={"authorization": f"Bearer {hub.secret}", "content-type": "application/json"},
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert says in error["message"] and error["type"] == "invalid_request_error"


def test_an_oversized_body_or_prompt_is_refused(hub, hub_url, settings):
    headers = {"authorization": f"Bearer {hub.secret}"}
    huge = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x" * (9 * 1024 * 1024)}]}
    response = httpx.post(f"{hub_url}/v1/chat/completions", json=huge, headers=headers, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "request_too_large"
    long = {"model": "ollama/llama3.2:latest", "messages": [{"role": "user", "content": "word " * 200_000}]}
    response = httpx.post(f"{hub_url}/v1/chat/completions", json=long, headers=headers, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"


def test_wrong_methods_and_paths_answer_in_openais_error_shape(hub, hub_url):
    headers = {"authorization": f"Bearer {hub.secret}"}
    assert httpx.get(f"{hub_url}/v1/chat/completions", headers=headers).status_code == 405
    missing = httpx.post(f"{hub_url}/v1/images/generations", headers=headers, json={})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
    assert "POST /v1/embeddings" in missing.json()["error"]["message"]
    assert httpx.get(f"{hub_url}/v1/models").status_code == 401


def test_an_unreachable_provider_is_a_503(client, alpha):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    provider = registry.save(
        "openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=f"http://127.0.0.1:{port}/v1", team=alpha
    )
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model=f"{provider.id}/gpt-4o-mini", messages=ASK)
    assert failed.value.status_code == 503
    assert failed.value.body["code"] == "upstream_unavailable"
    assert Run.objects.get(model_requested=f"{provider.id}/gpt-4o-mini").status == Run.Status.FAILED


def test_a_second_request_is_answered_while_the_first_is_still_streaming(client, hub, fake_openai):
    """One slow stream must not hold up the rest of the API: requests are served side by side."""
    fake_openai.reply_text = " ".join(f"w{n}" for n in range(12))
    fake_openai.chunk_delay = 0.2  # the first stream takes over two seconds upstream
    first = client.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, stream=True)
    first_chunk = next(iter(first))
    second = client.chat.completions.create(model="openai/gpt-4o-mini", messages=ASK, stream=True)
    next(iter(second))
    running = Run.objects.get(uuid=uuid.UUID(first_chunk.id.removeprefix("chatcmpl-")))
    assert running.status == Run.Status.STREAMING  # the second answered before the first was done
    for stream in (first, second):
        assert [c.choices[0].finish_reason for c in stream if c.choices][-1] == "stop"
