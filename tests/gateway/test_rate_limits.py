"""Requests- and tokens-per-minute limits of API keys and teams, against the live hub with the
official SDKs: OpenAI's 429 and headers, nothing run or charged when refused, exact under
concurrency (the database here and in the PostgreSQL pass; Redis with a real redis-server)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx
import openai
import pytest

from accounts.models import Team
from audit.models import AuditEntry
from gateway import keys, ratelimits
from gateway.models import ApiKey, RateWindow
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.redis_server import redis_server
from tests.servers import Server, free_port
from usage.models import Budget, Run, UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [{"role": "user", "content": "Say hello."}]
MODEL = "openai/gpt-4o-mini"
NO_REDIS = "redis-server is not installed (Debian: apt-get install redis-server; `make test` does)"


@pytest.fixture
def hub(alpha, openai_and_anthropic):
    return keys.create(alpha, "ci", requests_per_minute=3)


def sdk(url: str, new_key: keys.NewKey) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=new_key.secret, max_retries=0, timeout=30)


def ask(client: openai.OpenAI, max_tokens: int = 20):
    return client.chat.completions.with_raw_response.create(model=MODEL, messages=ASK, max_tokens=max_tokens)


def test_the_fourth_request_of_a_three_a_minute_key_is_refused_like_openai_refuses_it(hub, hub_url):
    client = sdk(hub_url, hub)
    left = [ask(client).headers["x-ratelimit-remaining-requests"] for _ in range(2)]
    streamed = client.chat.completions.with_raw_response.create(model=MODEL, messages=ASK, stream=True)
    assert left + [streamed.headers["x-ratelimit-remaining-requests"]] == ["2", "1", "0"]
    assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed.parse() if chunk.choices)
    runs, usage = Run.objects.count(), UsageRecord.objects.count()
    with pytest.raises(openai.RateLimitError) as refused:
        ask(client)
    error = refused.value
    assert error.status_code == 429 and error.code == "rate_limit_exceeded" and error.type == "requests"
    assert "API key ci" in error.message and "Limit 3, Used 3, Requested 1" in error.message
    headers = error.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-limit-requests"] == "3" and headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    assert "x-ratelimit-limit-tokens" not in headers  # no token limit applies to this key
    # Nothing ran, nothing was held or charged: no run row, no usage row.
    assert (Run.objects.count(), UsageRecord.objects.count()) == (runs, usage)
    metrics = httpx.get(f"{hub_url}/metrics").text  # loopback: no token needed
    assert 'llmhub_rate_limited_total{kind="requests",scope="key"}' in metrics


def test_a_team_limit_on_tokens_counts_input_and_max_tokens_across_its_keys(hub, hub_url):
    hub.key.requests_per_minute = None
    hub.key.save()
    other = keys.create(hub.key.team, "nightly")
    assert "x-ratelimit-limit-tokens" not in ask(sdk(hub_url, hub), max_tokens=100).headers  # no limit yet
    run = Run.objects.get()
    team = Team.objects.get(pk=hub.key.team_id)
    team.tokens_per_minute = 2 * (run.estimated_input_tokens + 100)
    team.save(update_fields=["tokens_per_minute"])  # as ratelimits.change() saves it: a new version
    answer = ask(sdk(hub_url, other), max_tokens=100)
    assert answer.headers["x-ratelimit-limit-tokens"] == str(2 * (run.estimated_input_tokens + 100))
    assert int(answer.headers["x-ratelimit-remaining-tokens"]) == run.estimated_input_tokens + 100
    ask(sdk(hub_url, hub), max_tokens=100)
    with pytest.raises(openai.RateLimitError) as refused:
        ask(sdk(hub_url, other), max_tokens=1)
    assert refused.value.type == "tokens" and "team Alpha" in refused.value.message
    with pytest.raises(openai.RateLimitError) as too_large:
        ask(sdk(hub_url, other), max_tokens=10_000)
    assert "Request too large" in too_large.value.message
    assert Run.objects.count() == 3


def test_a_keys_limit_leaves_its_teams_other_keys_and_other_teams_alone(hub, hub_url, charlie, fake_openai):
    hub.key.requests_per_minute = 1
    hub.key.save()
    ask(sdk(hub_url, hub))
    with pytest.raises(openai.RateLimitError):
        ask(sdk(hub_url, hub))
    sibling = keys.create(hub.key.team, "sibling")
    assert "x-ratelimit-limit-requests" not in ask(sdk(hub_url, sibling)).headers
    theirs = Team.objects.get(name="Charlie's team")
    credentials = {"api_key": GOOD_KEYS["openai"]}
    registry.save("openai", credentials, provider_id="openai-c", endpoint=fake_openai.url, team=theirs)
    team = Team.objects.get(pk=hub.key.team_id)
    team.requests_per_minute = 1
    team.save(update_fields=["requests_per_minute"])
    client = sdk(hub_url, keys.create(theirs, "theirs"))
    answer = client.chat.completions.with_raw_response.create(model="openai-c/gpt-4o-mini", messages=ASK)
    assert answer.http_response.status_code == 200 and "x-ratelimit-limit-requests" not in answer.headers


def test_twenty_requests_at_once_on_five_a_minute_admit_exactly_five(hub, hub_url):
    hub.key.requests_per_minute = 5
    hub.key.save()
    statuses = asyncio.run(at_once(hub_url, hub.secret, 20))
    assert statuses == Counter({200: 5, 429: 15})
    assert Run.objects.count() == 5 and RateWindow.objects.get(scope=f"key:{hub.key.pk}").requests == 5


async def at_once(url: str, secret: str, count: int) -> Counter:
    body = {"model": MODEL, "messages": ASK, "max_tokens": 10}
    headers = {"authorization": f"Bearer {secret}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        answers = await asyncio.gather(
            *[client.post("/v1/chat/completions", json=body) for _ in range(count)]
        )
    return Counter(answer.status_code for answer in answers)


def test_anthropics_sdk_gets_its_rate_limit_error_and_counting_tokens_stays_free(hub, hub_url):
    hub.key.requests_per_minute = 1
    hub.key.save()
    client = anthropic.Anthropic(base_url=hub_url, api_key=hub.secret, max_retries=0, timeout=30)
    answer = client.messages.with_raw_response.create(model=MODEL, max_tokens=20, messages=ASK)
    assert answer.headers["anthropic-ratelimit-requests-remaining"] == "0"
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(model=MODEL, max_tokens=20, messages=ASK)
    assert refused.value.body["error"]["type"] == "rate_limit_error"
    assert refused.value.response.headers["anthropic-ratelimit-requests-limit"] == "1"
    assert int(refused.value.response.headers["retry-after"]) >= 1
    assert client.messages.count_tokens(model=MODEL, messages=ASK).input_tokens > 0


def test_embeddings_and_responses_are_limited_too(hub, hub_url):
    hub.key.requests_per_minute = 1
    hub.key.save()
    client = sdk(hub_url, hub)
    client.embeddings.create(model="openai/text-embedding-3-small", input="hello", encoding_format="float")
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model=MODEL, input="Say hello.")
    assert Run.objects.count() == 1


@pytest.mark.parametrize("backend", ["database", "redis"])
def test_the_window_starts_again_once_it_is_over(alpha, settings, backend):
    if backend == "redis" and shutil.which("redis-server") is None:
        pytest.skip(NO_REDIS)
    settings.LLMHUB_RATE_LIMIT_WINDOW_SECONDS = 0.3
    with redis_or_database(settings, backend):
        limits = [ratelimits.Limit(f"team:{alpha.pk}", "team Alpha", 2, None)]
        ratelimits.admit(limits, 10)
        ratelimits.admit(limits, 10)
        with pytest.raises(ratelimits.RateLimited) as refused:
            ratelimits.admit(limits, 10)
        assert refused.value.retry_after == 1
        time.sleep(0.35)
        assert ratelimits.admit(limits, 10).used[0].requests == 1


def test_redis_admits_exactly_five_of_twenty_requests_at_once(alpha, settings):
    if shutil.which("redis-server") is None:
        pytest.skip(NO_REDIS)
    with redis_or_database(settings, "redis"):
        limits = [
            ratelimits.Limit("key:1", "API key ci", 5, None),
            ratelimits.Limit("team:1", "team", None, 1000),
        ]

        def one(_: int) -> bool:
            try:
                ratelimits.admit(limits, 100)
            except ratelimits.RateLimited:
                return False
            return True

        with ThreadPoolExecutor(20) as pool:
            admitted = list(pool.map(one, range(20)))
    assert admitted.count(True) == 5 and not RateWindow.objects.exists()


@pytest.fixture
def redis_hub(hub) -> Iterator[Server]:
    if shutil.which("redis-server") is None:
        pytest.skip(NO_REDIS)
    with redis_server() as url:
        server = Server("gateway/rate-limits-redis", REDIS_URL=url)
        yield server
        server.stop()


def test_a_hub_on_redis_admits_exactly_five_of_twenty_requests_at_once(hub, redis_hub):
    hub.key.requests_per_minute = 5
    hub.key.save()
    assert asyncio.run(at_once(redis_hub.url, hub.secret, 20)) == Counter({200: 5, 429: 15})
    assert Run.objects.count() == 5 and not RateWindow.objects.exists()


def test_a_limited_key_is_answered_503_when_redis_does_not_answer(hub, client, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    body = {"model": MODEL, "messages": ASK, "max_tokens": 10}
    answer = client.post(
        "/v1/chat/completions",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {hub.secret}",
    )
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "rate_limits_unavailable"
    assert answer["retry-after"] == "5" and not Run.objects.exists()


class redis_or_database:
    """REDIS_URL set to a throwaway redis-server for the block, or left empty (the database)."""

    def __init__(self, settings, backend: str) -> None:
        self.settings, self.backend, self.server = settings, backend, None

    def __enter__(self) -> None:
        self.settings.REDIS_URL = ""
        if self.backend == "redis":
            self.server = redis_server()
            self.settings.REDIS_URL = self.server.__enter__()

    def __exit__(self, *exc) -> None:
        if self.server is not None:
            self.server.__exit__(*exc)


def test_an_admin_sets_a_keys_limits_audited_and_another_teams_admin_cannot(
    alice_client, charlie_client, alpha
):
    key = keys.create(alpha, "ci").key
    form = {f"key-{key.pk}-requests_per_minute": "30", f"key-{key.pk}-tokens_per_minute": ""}
    assert charlie_client.post(f"/settings/api-keys/{key.pk}/limits/", form).status_code == 404
    alice_client.post(f"/settings/api-keys/{key.pk}/limits/", form)
    key.refresh_from_db()
    assert (key.requests_per_minute, key.tokens_per_minute) == (30, None)
    entry = AuditEntry.objects.get(action="rate_limits_changed")
    assert entry.before == {"rpm": None, "tpm": None} and entry.after == {"rpm": 30, "tpm": None}
    assert "Rate limits changed" in alice_client.get("/audit/").content.decode()


@pytest.mark.parametrize(
    ("typed", "error"),
    [("-1", "cannot be negative"), ("2.5", "whole number"), ("99999999999", "At most 1,000,000")],
)
def test_an_invalid_limit_is_refused_by_name_and_changes_nothing(alice_client, alpha, typed, error):
    key = keys.create(alpha, "ci", requests_per_minute=7).key
    form = {f"key-{key.pk}-requests_per_minute": typed, f"key-{key.pk}-tokens_per_minute": "5000"}
    page = alice_client.post(f"/settings/api-keys/{key.pk}/limits/", form).content.decode()
    assert error in page and "<details open>" in page
    key.refresh_from_db()
    assert (key.requests_per_minute, key.tokens_per_minute) == (7, None)
    assert not AuditEntry.objects.filter(action="rate_limits_changed").exists()


def test_the_team_budget_page_sets_the_teams_limits_and_keeps_the_budget_when_one_is_wrong(
    alice_client, alpha
):
    url = "/budget/"
    typed = {"daily_limit_usd": "5", "monthly_limit_usd": "", "alert_percent": "80"}
    page = alice_client.post(url, {**typed, "limits-requests_per_minute": "-3"}).content.decode()
    assert "cannot be negative" in page and 'value="5"' in page
    assert not Budget.objects.exists()
    alice_client.post(url, {**typed, "limits-requests_per_minute": "60", "limits-tokens_per_minute": "0"})
    alpha.refresh_from_db()
    assert (alpha.requests_per_minute, alpha.tokens_per_minute) == (60, None)
    assert AuditEntry.objects.get(action="rate_limits_changed").object_type == "team"
    assert Budget.objects.get().daily_limit_usd == 5


def test_a_key_created_with_limits_keeps_them(alice_client, alpha):
    alice_client.post(
        "/settings/api-keys/", {"name": "bot", "requests_per_minute": "12", "tokens_per_minute": "0"}
    )
    key = ApiKey.objects.get()
    assert (key.requests_per_minute, key.tokens_per_minute) == (12, None)
    assert AuditEntry.objects.get(action="api_key_created").after["rpm"] == 12
