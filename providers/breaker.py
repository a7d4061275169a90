"""The circuit breaker: a provider that failed LLMHUB_BREAKER_FAILURES requests in a row (network
errors, timeouts, 5xx, 429: the retryable failures) is skipped for LLMHUB_BREAKER_COOLDOWN_SECONDS,
so a run falls back at once instead of spending its retries on a dead endpoint. After the cooling-
off one probe request goes through (half-open): success closes the circuit, failure opens it again.

The state is one row per provider (CircuitBreaker), so every server process agrees. The run engine
asks `skipped()` when it plans a run's models and reports each request with `record_success()` or
`record_failure()`; Settings → Providers shows an open circuit and resets it (`reset()`, audited).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from audit import log
from llmhub import conf, instances, statements
from llmhub.database import UNAVAILABLE
from providers import configuration
from providers.errors import CircuitOpen, ProviderError
from providers.models import CircuitBreaker, Provider

logger = logging.getLogger(__name__)


def _cooldown() -> timedelta:
    return timedelta(seconds=settings.LLMHUB_BREAKER_COOLDOWN_SECONDS)


def skipped(provider_ids: list[str]) -> dict[str, CircuitOpen]:
    """Of these providers (in the order a run would try them), the ones to skip now, with why. A
    provider past its cooling-off is tried again: by the first run that claims its probe when it
    comes first, by any run when it is only a fallback."""
    now = conf.now()
    states = _opened(provider_ids)
    if not states:  # as nearly always: and no generator to find `first`, closed by a GeneratorExit
        return {}
    skip: dict[str, CircuitOpen] = {}
    first = next((p for p in provider_ids if p not in states or states[p][0].open_until <= now), None)
    for provider_id, (row, name) in states.items():
        if row.open_until > now:
            skip[provider_id] = CircuitOpen(name, row.failures, row.open_until)
        elif provider_id == first and not _claim_probe(provider_id, now):
            until = row.probe_until or now + _cooldown()  # another run's probe is out
            skip[provider_id] = CircuitOpen(name, row.failures, until)
    return skip


def _opened(provider_ids: list[str]) -> dict[str, tuple[CircuitBreaker, str]]:
    """The opened circuits among these providers, with each provider's name. Read by every run, so
    in plain SQL (llmhub/statements.py); not read again by an API request that found none open
    when it read the configuration's version (providers/configuration.py)."""
    if not provider_ids or configuration.circuits_closed():
        return {}
    provider = statements.column(CircuitBreaker, "provider")
    sql = (
        f"SELECT {statements.columns(CircuitBreaker, 'b')}, p.{statements.column(Provider, 'display_name')} "
        f"FROM {statements.table(CircuitBreaker)} b JOIN {statements.table(Provider)} p "
        f"ON p.{statements.column(Provider, 'id')} = b.{provider} "
        f"WHERE b.{statements.column(CircuitBreaker, 'open_until')} IS NOT NULL "
        f"AND b.{provider} IN ({', '.join(['%s'] * len(provider_ids))})"
    )
    rows = statements.run(sql, provider_ids, statements.fetchall)
    opened = (instances.load(CircuitBreaker, row) for row in rows)
    return {row.provider_id: (row, name) for row, (*_, name) in zip(opened, rows, strict=True)}


def _claim_probe(provider_id: str, now: datetime) -> bool:
    """Half-open: exactly one request in its window tests the provider (an atomic update)."""
    free = Q(probe_until__isnull=True) | Q(probe_until__lte=now)
    claimed = CircuitBreaker.objects.filter(free, pk=provider_id, open_until__lte=now)
    return claimed.update(probe_until=now + _cooldown()) == 1


def record_failure(provider_id: str, error: ProviderError) -> bool:
    """Count a failed request; True when the provider is now skipped (the caller stops retrying it)."""
    if not error.retryable:
        return False  # a bad key or a refused request says nothing about the provider's health
    try:
        return _count_failure(provider_id, error)
    except UNAVAILABLE as fault:  # the run matters more than the count: it goes on
        logger.warning(
            "Could not count a failure of %s: the database is unavailable (%s)", provider_id, fault
        )
        return False


def _count_failure(provider_id: str, error: ProviderError) -> bool:
    now = conf.now()
    with transaction.atomic():
        if not Provider.objects.filter(pk=provider_id).exists():
            return False  # deleted meanwhile
        CircuitBreaker.objects.bulk_create([CircuitBreaker(provider_id=provider_id)], ignore_conflicts=True)
        row = CircuitBreaker.objects.select_for_update().get(pk=provider_id)
        row.failures += 1
        row.last_error = error.user_message[:300]
        probe_failed = row.open_until is not None and row.open_until <= now
        if probe_failed or (row.open_until is None and row.failures >= settings.LLMHUB_BREAKER_FAILURES):
            row.open_until, row.probe_until = now + _cooldown(), None
            logger.warning(
                "%s failed %d times in a row (%s): skipped until %s",
                provider_id,
                row.failures,
                row.last_error,
                row.open_until.isoformat(timespec="seconds"),
            )
        row.save()
    return row.open_until is not None and row.open_until > now


def record_success(provider_id: str) -> None:
    """A request got through: the count of failures starts again and an open circuit closes. (A
    run's settlement notes it in its own statements instead: usage/records.py, with failing().)"""
    try:
        if failing_now(provider_id):  # a read: most requests stop here
            close(provider_id)
    except UNAVAILABLE as fault:  # the run's settlement comes next and has its own remedies
        logger.warning(
            "Could not record that %s answered: the database is unavailable (%s)", provider_id, fault
        )


def close(provider_id: str) -> None:
    """The count of failures starts again and an open circuit closes (the provider answered)."""
    CircuitBreaker.objects.filter(pk=provider_id).update(
        failures=0, open_until=None, probe_until=None, last_error=""
    )


def failing() -> str:
    """SQL true when the provider (its one parameter) has failures counted or its circuit open:
    a settlement reads it with its first write, to close the circuit of the provider that answered
    in the same transaction (usage/records.py) instead of a read of its own before it."""
    return (
        f"EXISTS (SELECT 1 FROM {statements.table(CircuitBreaker)} "
        f"WHERE {statements.column(CircuitBreaker, 'provider')} = %s "
        f"AND ({statements.column(CircuitBreaker, 'failures')} > 0 "
        f"OR {statements.column(CircuitBreaker, 'open_until')} IS NOT NULL))"
    )


def failing_now(provider_id: str) -> bool:
    """Whether the provider has failures counted or its circuit open (plain SQL)."""
    return bool(statements.run(f"SELECT {failing()}", [provider_id], statements.fetchone)[0])


def reset(provider: Provider, actor) -> None:
    """An admin closes the circuit by hand (the provider was fixed): runs use it again at once."""
    row = CircuitBreaker.objects.filter(provider=provider).first()
    if row is None or (row.failures == 0 and row.open_until is None):
        return
    before = {"failures": row.failures, "skipped_until": row.open_until, "last_error": row.last_error}
    with transaction.atomic():
        CircuitBreaker.objects.filter(pk=row.pk).update(
            failures=0, open_until=None, probe_until=None, last_error=""
        )
        log.record(actor, "breaker_reset", provider, before=before, after={"failures": 0})


def states() -> dict[str, str]:
    """Every provider with a circuit on record: "open" (skipped now), "half_open" (its cooling-off
    is over: the next request is a probe) or "closed" (failures below the limit), for /metrics."""
    now = conf.now()
    found = {}
    for row in CircuitBreaker.objects.all():
        if row.open_until is None:
            found[row.provider_id] = "closed"
        else:
            found[row.provider_id] = "open" if row.open_until > now else "half_open"
    return found
