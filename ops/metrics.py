"""Prometheus metrics, served at /metrics (prometheus-client).

Counters and histograms are updated where things happen: requests by ops.middleware, runs by
ops.observe when the run engine ends one. Budgets, reservations and circuit breakers are read from
their source at scrape time by the collectors below, so they are never stale and cost nothing
between scrapes.

Several server processes: start each with PROMETHEUS_MULTIPROC_DIR set to one empty folder shared
by them (emptied before they start); every process then writes its counters there and a scrape of
any of them sums them all. prometheus-client reads that variable when it is first imported.

Labels stay few: providers, models and teams that exist, URL routes (never raw paths), statuses.
Nothing here holds a key: teams by name, API keys not at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from django.utils.module_loading import import_string
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

REQUESTS = Counter(
    "llmhub_http_requests",
    "HTTP requests answered, by URL route and status.",
    ["endpoint", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "llmhub_http_request_duration_seconds",
    "Seconds until the response started (a stream's headers, not its end), by URL route.",
    ["endpoint"],
)
RUNS = Counter(
    "llmhub_runs",
    "Runs ended, by provider, model and outcome (completed, failed, cancelled, refused by a budget).",
    ["provider", "model", "outcome"],
)
TIME_TO_FIRST_TOKEN = Histogram(
    "llmhub_run_time_to_first_token_seconds",
    "Seconds from a run's start to its first text, retries and fallback included.",
    ["provider", "model"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60),
)
RUN_SECONDS = Histogram(
    "llmhub_run_duration_seconds",
    "Seconds from a run's start to its end.",
    ["provider", "model"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
TOKENS = Counter(
    "llmhub_tokens",
    "Tokens charged, by provider, model, team and kind (input, output).",
    ["provider", "model", "team", "kind"],
)
COST = Counter(
    "llmhub_cost_usd", "US dollars charged, by provider, model and team.", ["provider", "model", "team"]
)
RATE_LIMITED = Counter(
    "llmhub_rate_limited",
    "API requests refused by a rate limit, by scope (key, team) and kind (requests, tokens).",
    ["scope", "kind"],
)
RETRIES = Counter("llmhub_provider_retries", "Retries after a provider failed, by provider.", ["provider"])
FALLBACKS = Counter(
    "llmhub_fallbacks",
    "Runs that switched to a fallback model, by the provider that failed and the one tried next.",
    ["provider", "to_provider"],
)

_children: dict[tuple, Any] = {}


def child(metric: Counter | Histogram, *values: str) -> Any:
    """`metric.labels(*values)`, kept: labels() checks and converts its values and takes a lock every
    call (~2.5 µs, seven times a chat request); a kept child is one dict look-up. Keeps what
    prometheus-client keeps anyway (a child per label set, for the process's life)."""
    found = _children.get((metric, values))
    if found is None:
        found = _children[(metric, values)] = metric.labels(*values)
    return found


# The circuit breaker (when the engine has one) is read through this function: provider id -> "closed",
# "half_open" or "open". Until it exists the metric is simply absent.
BREAKER_STATES = "providers.breaker.states"
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}


def exposition() -> bytes:
    """The text a scrape gets: this process's (or every process's) counters, then the standings."""
    return generate_latest(_counters()) + generate_latest(STANDINGS)


def _counters() -> CollectorRegistry:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    return registry


class BudgetCollector:
    """Each limited budget against its limit in the current day and month (three queries)."""

    def collect(self) -> Iterator[Metric]:
        from usage import budgets

        names = ["budget", "scope", "period"]
        limit = GaugeMetricFamily("llmhub_budget_limit_usd", "A budget's limit in its period.", labels=names)
        spent = GaugeMetricFamily("llmhub_budget_spent_usd", "Spent in the budget's period.", labels=names)
        held = GaugeMetricFamily(
            "llmhub_budget_reserved_usd", "Held by running runs against the budget.", labels=names
        )
        used = GaugeMetricFamily(
            "llmhub_budget_used_ratio", "(spent + held) / limit: 1 means the budget is used up.", labels=names
        )
        for standing in budgets.current_standings():
            labels = [str(standing.budget.pk), budgets.label(standing.budget), standing.period]
            limit.add_metric(labels, float(standing.limit))
            spent.add_metric(labels, float(standing.spent))
            held.add_metric(labels, float(standing.reserved))
            used.add_metric(labels, float(standing.share))
        yield from (limit, spent, held, used)


class ReservationCollector:
    """Money held by runs in progress, which budgets count as spent until the runs settle."""

    def collect(self) -> Iterator[Metric]:
        from django.db.models import Count, Sum
        from django.utils import timezone

        from usage.models import Run

        active = Run.objects.filter(reserved_usd__isnull=False, reservation_expires_at__gt=timezone.now())
        totals = active.aggregate(runs=Count("pk"), held=Sum("reserved_usd"))
        yield GaugeMetricFamily("llmhub_reservations_held", "Runs holding a reservation.", totals["runs"])
        yield GaugeMetricFamily(
            "llmhub_reservations_held_usd", "US dollars held by reservations.", float(totals["held"] or 0)
        )


class BreakerCollector:
    """Circuit-breaker state per provider, from the function named by `path` if it exists."""

    def __init__(self, path: str = BREAKER_STATES) -> None:
        self.path = path

    def collect(self) -> Iterator[Metric]:
        try:
            states: Callable[[], dict[str, str]] = import_string(self.path)
        except ImportError:
            return
        gauge = GaugeMetricFamily(
            "llmhub_circuit_breaker_state", "0 closed, 1 half-open, 2 open.", labels=["provider"]
        )
        for provider, state in sorted(states().items()):
            if state in BREAKER_VALUES:
                gauge.add_metric([provider], BREAKER_VALUES[state])
        yield gauge


# Read at scrape time by the process that answers it; never registered in the default registry.
STANDINGS = CollectorRegistry(auto_describe=False)
for _collector in (BudgetCollector(), ReservationCollector(), BreakerCollector()):
    STANDINGS.register(_collector)
