"""The Grafana dashboard and the alert rules in docs/operations/ query only metrics /metrics serves."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from providers.base import Message
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from tests.ops.conftest import samples, scrape
from tests.ops.test_metrics import finish
from usage import runs
from usage.models import Budget, FallbackPolicy

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("metrics_open")]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations"
METRIC = re.compile(r"\bllmhub_[a-z0-9_]+")


def dashboard_queries() -> list[str]:
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets") or []]


def test_the_dashboard_is_importable_grafana_json():
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] and dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"
    assert len(dashboard_queries()) >= 15
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_every_metric_the_dashboard_and_the_alerts_query_is_served(
    settings, alice, alpha, fake_openai, fake_anthropic, client
):
    settings.LLMHUB_RETRY_BASE_SECONDS = 0.001
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    registry.save("anthropic", {"api_key": GOOD_KEYS["anthropic"]}, endpoint=fake_anthropic.url, team=alpha)
    FallbackPolicy.objects.create(team=alpha, order=["anthropic/claude-haiku-4-5"], retry_count=1)
    Budget.objects.create(team=alpha, monthly_limit_usd=Decimal("10"))
    for _ in range(2):
        fake_openai.fail_next_as("server_error")
    finish(
        runs.create_run(alice, alpha, "openai/gpt-4o-mini", [Message("user", "Hi")], 50)
    )  # retry, fallback
    client.get("/healthz")  # a process that has answered no request yet has no request series
    served = {name for name, _ in samples(scrape(client))}
    queried = {name for query in dashboard_queries() for name in METRIC.findall(query)}
    queried |= set(METRIC.findall((DOCS / "prometheus-alerts.yml").read_text()))
    assert queried and queried <= served, sorted(queried - served)
