"""The spend page and its CSV filtered by kind of call (chat or embeddings), from the daily roll-ups,
after a chat and an embeddings call made through the live API."""

from __future__ import annotations

import csv
import io
import json
import re

import openai
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from gateway import keys
from providers.base import TokenCount
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage import rollups
from usage.models import DailySpend, FallbackPolicy, UsageRecord
from usage.records import record_usage

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def calls(alpha, alice, fake_openai, hub_url):
    """One chat completion and one embeddings call by an API key of Alpha."""
    registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, endpoint=fake_openai.url, team=alpha)
    FallbackPolicy.objects.create(team=alpha, enabled=False, retry_count=0)
    key = keys.create(alpha, "pipeline")
    client = openai.OpenAI(base_url=f"{hub_url}/v1", api_key=key.secret, max_retries=0, timeout=30)
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    client.embeddings.create(model="openai/text-embedding-3-small", input=["one two three"] * 50)
    return {row.kind: row for row in UsageRecord.objects.all()}


def totals(html: str) -> str:
    return re.search(r'<p class="muted" id="spend-totals">(.*?)</p>', html, re.S).group(1)


def charts(html: str) -> dict:
    return json.loads(
        re.search(r'<script id="spend-data" type="application/json">(.*?)</script>', html).group(1)
    )


def test_the_spend_page_shows_only_the_chosen_kind_of_call(alice_client, calls):
    chat, embeddings = calls["generation"], calls["embeddings"]
    assert chat.cost_usd > 0 and embeddings.cost_usd > 0
    everything = charts(alice_client.get("/spend/").content.decode())
    assert [name for name, _ in everything["models"]] == sorted(
        ["openai/gpt-4o-mini", "openai/text-embedding-3-small"],
        key=lambda name: -(chat.cost_usd if "gpt" in name else embeddings.cost_usd),
    )
    for kind, row in (("embeddings", embeddings), ("generation", chat)):
        html = alice_client.get(f"/spend/?kind={kind}").content.decode()
        assert [name for name, _ in charts(html)["models"]] == [f"openai/{row.model}"]
        assert f"{row.input_tokens:,} input" in totals(html) and ", 1 run," in totals(html)
        assert f'<option value="{kind}" selected>' in html
        listed = html.split('id="spend-runs"')[1].split("</table>")[0]
        assert listed.count("<tr><td>") == 1 and row.model in listed


def test_the_csv_export_follows_the_kind_filter(alice_client, calls):
    response = alice_client.get("/spend/usage.csv?kind=embeddings")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["model"], r["kind"]) for r in rows] == [("text-embedding-3-small", "embeddings")]


def test_an_unknown_kind_is_explained_and_shows_everything(alice_client, calls):
    html = alice_client.get("/spend/?kind=images").content.decode()
    assert "Select a valid choice" in html and ", 2 runs," in totals(html)


def test_each_kind_has_its_own_rollup_row_and_a_rebuild_keeps_them(alpha, alice):
    for kind in ("generation", "embeddings", "embeddings"):
        record_usage("openai", "gpt-4o", TokenCount(1000, 0), "api", team=alpha, user=alice, kind=kind)
    rows = dict(DailySpend.objects.values_list("kind", "runs"))
    assert rows == {"generation": 1, "embeddings": 2} and rollups.differences() == []
    DailySpend.objects.filter(kind="embeddings").delete()
    DailySpend.objects.filter(kind="generation").update(runs=3)  # as if both were counted as chat
    assert [d.kind for d in rollups.differences()] == ["embeddings", "generation"]
    rollups.rebuild()
    assert dict(DailySpend.objects.values_list("kind", "runs")) == rows and rollups.differences() == []


def test_a_deleted_api_key_folds_its_rollups_kind_by_kind(alpha, alice):
    key = keys.create(alpha, "gone").key
    for kind in ("generation", "embeddings"):
        record_usage("openai", "gpt-4o", TokenCount(1000, 0), "api", team=alpha, api_key=key, kind=kind)
        record_usage("openai", "gpt-4o", TokenCount(1000, 0), "api", team=alpha, kind=kind)
    key.delete()
    assert sorted(DailySpend.objects.values_list("kind", "runs", "api_key")) == [
        ("embeddings", 2, None),
        ("generation", 2, None),
    ]
    assert rollups.differences() == []


def test_the_migration_gives_existing_rollups_the_kind_of_their_usage_rows(alpha):
    record_usage("openai", "gpt-4o", TokenCount(1000, 500), "api", team=alpha)
    record_usage("openai", "text-embedding-3-small", TokenCount(800, 0), "api", team=alpha, kind="embeddings")
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes("usage")
    executor.migrate([("usage", "0013_call_kind_on_runs_and_usage_rows")])  # roll-ups without a kind
    executor = MigrationExecutor(connection)
    executor.migrate(latest)
    assert dict(DailySpend.objects.values_list("model", "kind")) == {
        "gpt-4o": "generation",
        "text-embedding-3-small": "embeddings",
    }
    assert rollups.differences() == []
