"""The circuit breaker: a provider that keeps failing is skipped for a while, so fallback answers at
once; after the cooling-off one probe request decides; admins see it and can reset it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from audit.models import AuditEntry
from providers import breaker
from providers.base import Message
from providers.errors import NetworkError, UnexpectedResponse
from providers.models import CircuitBreaker
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage import fallback, runs
from usage.models import FallbackPolicy, Run

pytestmark = pytest.mark.django_db(transaction=True)
ASK = [Message("user", "Write about reliability.")]
HAIKU = "anthropic/claude-haiku-4-5"


@pytest.fixture(autouse=True)
def quick_retries(settings):
    settings.LLMHUB_RETRY_BASE_SECONDS = 0.001
    settings.LLMHUB_BREAKER_FAILURES = 5
    settings.LLMHUB_BREAKER_COOLDOWN_SECONDS = 60


@pytest.fixture
def providers(alpha, fake_openai, fake_anthropic):
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=fake_anthropic.url, team=alpha)
    return FallbackPolicy.objects.create(team=alpha, order=[HAIKU], retry_count=4)


@pytest.fixture
def openai_down(fake_openai):
    """OpenAI's server is gone: connections are refused. Yields a function that brings it back."""
    port = fake_openai.port
    fake_openai.stop()
    yield lambda: fake_openai.start(port)


async def play(alice, alpha, model="openai/gpt-4o-mini") -> tuple[Run, list]:
    run = await sync_to_async(runs.create_run)(alice, alpha, model, ASK, 200)
    events = [event async for event in runs.stream(run)]
    return events[-1].run, events


def chat_requests(fake) -> int:
    return sum(1 for r in fake.requests if r.path.endswith(("/chat/completions", "/messages")))


def waits(events) -> int:
    return sum(1 for e in events if isinstance(e, fallback.Waiting))


async def test_a_dead_provider_is_skipped_after_five_failures_so_fallback_answers_at_once(
    alice, alpha, providers, openai_down, fake_anthropic
):
    first, events = await play(alice, alpha)
    assert first.status == Run.Status.COMPLETED and first.model_used == HAIKU
    assert waits(events) == 4  # the first run still tried OpenAI five times, waiting between tries
    second, events = await play(alice, alpha)
    assert second.status == Run.Status.COMPLETED and second.model_used == HAIKU
    assert waits(events) == 0  # no retries: OpenAI was not tried at all
    until = timezone.localtime(await sync_to_async(lambda: CircuitBreaker.objects.get().open_until)())
    assert second.attempts[0] == {
        "model": "openai/gpt-4o-mini",
        "skipped": f"OpenAI failed 5 times in a row; skipped until {until:%H:%M}. "
        "Try again then, or pick another model.",
    }
    assert chat_requests(fake_anthropic) == 2


async def test_the_circuit_opens_mid_run_and_the_run_falls_back_without_its_last_retries(
    alice, alpha, providers, openai_down, settings
):
    settings.LLMHUB_BREAKER_FAILURES = 2
    run, events = await play(alice, alpha)
    assert run.model_used == HAIKU and waits(events) == 1  # two tries, not five


async def test_a_run_whose_only_model_is_skipped_fails_at_once_saying_until_when(
    alice, alpha, providers, openai_down
):
    providers.order = []
    await providers.asave()
    await play(alice, alpha)  # opens the circuit
    run, events = await play(alice, alpha)
    assert run.status == Run.Status.FAILED and len(events) == 1  # no start, no countdown
    assert run.error_message.startswith("OpenAI failed 5 times in a row; skipped until ")
    stored = await Run.objects.aget(pk=run.pk)
    assert stored.status == Run.Status.FAILED and stored.error_message == run.error_message


async def test_after_the_cooling_off_one_probe_goes_through_and_closes_the_circuit(
    alice, alpha, providers, openai_down, fake_openai
):
    await play(alice, alpha)  # opens it
    openai_down()  # OpenAI is back
    await CircuitBreaker.objects.aupdate(open_until=timezone.now() - timedelta(seconds=1))  # 60 s later
    run, _ = await play(alice, alpha)
    assert run.status == Run.Status.COMPLETED and run.model_used == "openai/gpt-4o-mini"
    row = await CircuitBreaker.objects.aget()
    assert (row.failures, row.open_until) == (0, None)


def test_while_a_probe_is_out_other_runs_keep_skipping_the_provider(providers):
    CircuitBreaker.objects.create(
        provider_id="openai", failures=5, open_until=timezone.now() - timedelta(seconds=1)
    )
    assert breaker.skipped(["openai", "anthropic"]) == {}  # this caller is the probe
    (refusal,) = breaker.skipped(["openai", "anthropic"]).values()
    assert refusal.provider == "OpenAI"


def test_a_failed_probe_opens_the_circuit_again(providers):
    CircuitBreaker.objects.create(
        provider_id="openai", failures=5, open_until=timezone.now() - timedelta(seconds=1)
    )
    assert breaker.skipped(["openai"]) == {}
    assert breaker.record_failure("openai", NetworkError("OpenAI")) is True
    row = CircuitBreaker.objects.get()
    assert row.failures == 6 and row.open_until > timezone.now() + timedelta(seconds=50)


def test_only_retryable_failures_count_and_a_success_starts_the_count_again(providers):
    breaker.record_failure("openai", UnexpectedResponse("OpenAI", 400, "bad request"))
    assert not CircuitBreaker.objects.exists()
    for _ in range(4):
        assert breaker.record_failure("openai", UnexpectedResponse("OpenAI", 503)) is False
    breaker.record_success("openai")
    for _ in range(4):
        assert breaker.record_failure("openai", NetworkError("OpenAI")) is False
    assert breaker.record_failure("openai", NetworkError("OpenAI")) is True


def test_settings_shows_the_skipped_provider_and_an_admin_resets_it(providers, alice_client, alice):
    until = timezone.now() + timedelta(minutes=1)
    CircuitBreaker.objects.create(
        provider_id="openai", failures=5, open_until=until, last_error="Can't reach OpenAI."
    )
    html = alice_client.get("/providers/settings/").content.decode()
    assert f"Skipped until {timezone.localtime(until):%H:%M} after 5 failures" in html
    response = alice_client.post("/providers/openai/breaker/reset/")
    assert response.status_code == 302
    row = CircuitBreaker.objects.get()
    assert (row.failures, row.open_until) == (0, None)
    entry = AuditEntry.objects.get(action="breaker_reset")
    assert entry.actor == alice and entry.before["failures"] == 5
    assert "Skipped until" not in alice_client.get("/providers/settings/").content.decode()


def test_another_teams_admin_cannot_reset_it(providers, charlie_client):
    CircuitBreaker.objects.create(
        provider_id="openai", failures=5, open_until=timezone.now() + timedelta(minutes=1)
    )
    assert charlie_client.post("/providers/openai/breaker/reset/").status_code == 403
    assert CircuitBreaker.objects.get().failures == 5
