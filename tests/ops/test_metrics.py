"""/metrics: what a run, a retry and a fallback move; budget standings; who may scrape; no secrets."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from django.utils import timezone
from prometheus_client import generate_latest
from prometheus_client.registry import CollectorRegistry

from gateway import keys
from ops.metrics import BreakerCollector
from providers.base import Message
from providers.registry import registry
from tests.conftest import BAD_KEY, GOOD_KEYS
from tests.ops.conftest import samples, scrape, value
from usage import budgets, runs
from usage.events import Ended
from usage.models import Budget, DailySpend, FallbackPolicy, Run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("metrics_open")]
ASK = [Message("user", "Count the metrics.")]


@pytest.fixture(autouse=True)
def quick_retries(settings):
    settings.LLMHUB_RETRY_BASE_SECONDS = 0.001


def finish(run: Run) -> Run:
    async def drain() -> Run:
        ended = run
        async for event in runs.stream(run):
            if isinstance(event, Ended):
                ended = event.run
        return ended

    return async_to_sync(drain)()


def test_a_run_moves_the_run_token_cost_and_latency_metrics(alice, alpha, openai_provider, client):
    labels = {"provider": "openai", "model": "gpt-4o-mini"}
    before = scrape(client)
    run = finish(runs.create_run(alice, alpha, "openai/gpt-4o-mini", ASK, 100))
    after = scrape(client)

    def moved(name: str, **extra: str) -> float:
        return value(after, name, **extra) - value(before, name, **extra)

    assert run.status == Run.Status.COMPLETED and run.input_tokens and run.output_tokens
    assert moved("llmhub_runs_total", **labels, outcome="completed") == 1
    assert moved("llmhub_tokens_total", **labels, team="Alpha", kind="input") == run.input_tokens
    assert moved("llmhub_tokens_total", **labels, team="Alpha", kind="output") == run.output_tokens
    assert moved("llmhub_cost_usd_total", **labels, team="Alpha") == pytest.approx(float(run.cost_usd))
    assert moved("llmhub_run_time_to_first_token_seconds_count", **labels) == 1
    assert moved("llmhub_run_duration_seconds_count", **labels) == 1
    assert (
        0
        < moved("llmhub_run_time_to_first_token_seconds_sum", **labels)
        <= moved("llmhub_run_duration_seconds_sum", **labels)
    )


def test_failed_and_refused_runs_are_counted_by_outcome(alice, alpha, fake_openai, client):
    registry.save("openai", {"api_key": BAD_KEY}, endpoint=fake_openai.url, team=alpha)
    before = scrape(client)
    assert finish(runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 50)).status == Run.Status.FAILED
    Budget.objects.create(team=alpha, daily_limit_usd=Decimal("0"))
    refused = finish(runs.create_run(alice, alpha, "openai/gpt-4o", ASK, 50))
    after = scrape(client)
    assert refused.refusal is not None
    for outcome in ("failed", "refused"):
        labels = {"provider": "openai", "model": "gpt-4o", "outcome": outcome}
        assert value(after, "llmhub_runs_total", **labels) - value(before, "llmhub_runs_total", **labels) == 1


def test_retries_and_fallbacks_are_counted_per_provider(alice, alpha, fake_openai, fake_anthropic, client):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=fake_anthropic.url, team=alpha)
    FallbackPolicy.objects.create(team=alpha, order=["anthropic/claude-haiku-4-5"], retry_count=1)
    for _ in range(2):
        fake_openai.fail_next_as("server_error")
    before = scrape(client)
    run = finish(runs.create_run(alice, alpha, "openai/gpt-4o-mini", ASK, 50))
    after = scrape(client)
    assert run.model_used == "anthropic/claude-haiku-4-5"
    retries = value(after, "llmhub_provider_retries_total", provider="openai") - value(
        before, "llmhub_provider_retries_total", provider="openai"
    )
    fallbacks = {"provider": "openai", "to_provider": "anthropic"}
    assert retries == 1
    assert (
        value(after, "llmhub_fallbacks_total", **fallbacks)
        - value(before, "llmhub_fallbacks_total", **fallbacks)
        == 1
    )


def test_budget_gauges_match_the_standings_the_budgets_enforce(
    alice, alpha, charlie, openai_provider, client
):
    key = keys.create(alpha, "ci").key
    scoped = [
        Budget.objects.create(team=alpha, daily_limit_usd=Decimal("5"), monthly_limit_usd=Decimal("50")),
        Budget.objects.create(provider=openai_provider, monthly_limit_usd=Decimal("100")),
        Budget.objects.create(team=alpha, provider=openai_provider, daily_limit_usd=Decimal("2")),
        Budget.objects.create(team=alpha, api_key=key, daily_limit_usd=Decimal("1")),
        Budget.objects.create(team=charlie.memberships.get().team, monthly_limit_usd=Decimal("9")),
        Budget.objects.create(team=alpha, per_run_hard_cap_tokens=10_000),  # no limit: no gauge
    ]
    today, other = timezone.localdate(), charlie.memberships.get().team
    spend = [
        (today, alpha, None, "0.75"),
        (today, alpha, key, "0.125"),
        (today - timedelta(days=40), alpha, None, "9"),
        (today, other, None, "3"),
    ]
    for day, team, api_key, cost in spend:
        DailySpend.objects.create(
            day=day, team=team, api_key=api_key, provider_id="openai", model="gpt-4o", cost_usd=Decimal(cost)
        )
    held = runs.create_run(None, alpha, "openai/gpt-4o-mini", ASK, 100, api_key=key)
    Run.objects.filter(pk=held.pk).update(
        reserved_usd=Decimal("0.25"), reservation_expires_at=timezone.now() + timedelta(minutes=5)
    )
    text = scrape(client)
    for budget in scoped:
        for standing in budgets.standings(budget):
            labels = {"budget": str(budget.pk), "scope": budgets.label(budget), "period": standing.period}
            assert value(text, "llmhub_budget_limit_usd", **labels) == float(standing.limit)
            assert value(text, "llmhub_budget_spent_usd", **labels) == pytest.approx(float(standing.spent))
            assert value(text, "llmhub_budget_reserved_usd", **labels) == pytest.approx(
                float(standing.reserved)
            )
            assert value(text, "llmhub_budget_used_ratio", **labels) == pytest.approx(float(standing.share))
    assert value(text, "llmhub_reservations_held") == 1
    assert value(text, "llmhub_reservations_held_usd") == 0.25


def test_the_breaker_state_is_read_from_its_function_when_it_exists():
    registry_ = CollectorRegistry(auto_describe=False)
    registry_.register(BreakerCollector("tests.ops.test_metrics.breaker_states"))
    text = generate_latest(registry_).decode()
    assert value(text, "llmhub_circuit_breaker_state", provider="openai") == 2
    assert value(text, "llmhub_circuit_breaker_state", provider="anthropic") == 0
    missing = CollectorRegistry(auto_describe=False)
    missing.register(BreakerCollector("usage.no_such_module.states"))
    assert generate_latest(missing) == b""


def breaker_states() -> dict[str, str]:
    return {"openai": "open", "anthropic": "closed"}


def test_requests_are_counted_by_route_never_by_raw_path(alice, client):
    before = scrape(client)
    probe = uuid.uuid4().hex
    for path in (f"/v1/{probe}", f"/no-such-page-{probe}", "/healthz"):
        client.get(path)
    client.generic(f"M{probe[:8].upper()}", "/healthz")  # a made-up method
    after = scrape(client)
    assert probe not in after and probe[:8].upper() not in after
    requests = [
        ("v1/<path:path>", "GET", "404"),
        ("unmatched", "GET", "404"),
        ("healthz", "GET", "200"),
        ("healthz", "other", "405"),
    ]
    for endpoint, method, status in requests:
        labels = {"endpoint": endpoint, "method": method, "status": status}
        name = "llmhub_http_requests_total"
        assert value(after, name, **labels) - value(before, name, **labels) == 1


def test_no_secret_reaches_the_metrics(alice, alpha, openai_provider, client):
    key = keys.create(alpha, "notebook")
    finish(runs.create_run(None, alpha, "openai/gpt-4o-mini", ASK, 50, api_key=key.key))
    Client().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {key.secret}")
    text = scrape(client)
    assert samples(text)  # the scrape is not empty
    for secret in (key.secret, GOOD_KEYS["openai"], key.secret[-12:], "llmh-", "sk-"):
        assert secret not in text


def test_metrics_are_refused_to_other_machines_and_through_a_proxy(client):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200


def test_a_metrics_token_is_required_when_one_is_set(client, settings):
    settings.LLMHUB_METRICS_TOKEN = "scrape-me-0001"
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-0002").status_code == 401
    allowed = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me-0001", REMOTE_ADDR="203.0.113.9")
    assert allowed.status_code == 200 and b"llmhub_http_requests_total" in allowed.content
