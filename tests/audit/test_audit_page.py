"""The audit log page: readable entries, filters, paging and the CSV export."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audit import log
from audit.models import AuditEntry
from providers.registry import registry
from tests.conftest import GOOD_KEYS
from usage.models import Budget

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(alpha, alice, bob, charlie):
    openai = registry.save("openai", {"api_key": GOOD_KEYS["openai"]}, team=alpha)
    budget = Budget.objects.create(team=alpha, provider=openai, monthly_limit_usd="50")
    log.record(
        alice,
        "budget_changed",
        budget,
        team=alpha,
        before={"monthly_limit_usd": "20", "alert_threshold": "0.80", "daily_limit_usd": None},
        after={"monthly_limit_usd": "50", "alert_threshold": "0.75", "daily_limit_usd": None},
    )
    log.record(
        alice,
        "fallback_changed",
        alpha,
        team=alpha,
        before={"order": ["openai/gpt-4o"], "enabled": True},
        after={"order": ["openai/gpt-4o", "anthropic/claude-sonnet-4-5"], "enabled": True},
    )
    log.record(bob, "provider_disabled", openai, before={"enabled": True}, after={"enabled": False})
    theirs = charlie.memberships.get().team
    log.record(charlie, "provider_enabled", theirs, team=theirs, after={"enabled": True})
    return openai


def test_entries_read_as_sentences_with_names_and_formatted_values(alice_client, history):
    html = alice_client.get("/audit/").content.decode()
    assert "<td>Budget changed</td>" in html and "<code>budget_changed</code>" not in html
    assert "Alpha on OpenAI" in html  # the budget by name, not "budget 1"
    assert "Provider disabled" in html and '<span class="muted">Provider</span> OpenAI' in html
    # Changed fields stand out, before -> after; money and percentages are formatted.
    assert (
        'class="changed"><span class="was"><span class="visually-hidden">was </span>$20.00</span> → $50.00'
        in html
    )
    assert "80 %</span> → 75 %" in html
    assert "<dt>Daily limit</dt>\n  <dd>no limit</dd>" in html  # unchanged: shown plainly
    # A list is one readable line, not a Python repr cut mid-word.
    assert "openai/gpt-4o</span> → openai/gpt-4o, anthropic/claude-sonnet-4-5" in html
    assert "[&#x27;" not in html
    assert "charlie" not in html  # another team's entries stay out


def test_a_deleted_object_keeps_the_name_its_entry_saved(alice_client, history, alice):
    log.record(alice, "credentials_removed", history, before={"name": "OpenAI", "enabled": False})
    history.delete()
    html = alice_client.get("/audit/?action=credentials_removed").content.decode()
    assert "OpenAI (removed)" in html


@pytest.mark.parametrize(
    ("query", "actions"),
    [
        ("?actor=bob", ["provider_disabled"]),
        ("?action=fallback_changed", ["fallback_changed"]),
        ("?object=budget", ["budget_changed"]),
        ("?object=provider", ["credentials_added", "provider_disabled"]),  # newest first
    ],
)
def test_the_log_filters(alice_client, history, alice, query, actions):
    log.record(alice, "credentials_added", history, after={"name": "OpenAI"})
    html = alice_client.get(f"/audit/{query}").content.decode()
    assert shown(html) == actions


def shown(html: str) -> list[str]:
    """The actions of the entries listed, in order."""
    ids = [int(pk) for pk in re.findall(r'<tr id="audit-(\d+)"', html)]
    actions = dict(AuditEntry.objects.filter(pk__in=ids).values_list("pk", "action"))
    return [actions[pk] for pk in ids]


def test_the_date_filter_and_its_options(alice_client, history):
    old = AuditEntry.objects.get(action="budget_changed")
    month_ago = connection.ops.adapt_datetimefield_value(timezone.now() - timedelta(days=30))
    with connection.cursor() as cursor:  # entries are never edited by the app: only here, by hand
        cursor.execute("UPDATE audit_auditentry SET created_at = %s WHERE id = %s", [month_ago, old.pk])
    since = (timezone.localdate() - timedelta(days=1)).isoformat()
    html = alice_client.get(f"/audit/?from={since}&actor=alice").content.decode()
    assert shown(html) == ["fallback_changed"]
    assert '<option value="bob">bob</option>' in html  # every actor stays listed whatever is chosen
    assert "charlie" not in html


def test_the_log_pages(alice_client, alpha, alice):
    for n in range(60):
        log.record(alice, "provider_enabled", alpha, team=alpha, after={"enabled": bool(n % 2)})
    first = alice_client.get("/audit/").content.decode()
    assert first.count('<tr id="audit-') == 50 and "Page 1 of 2" in first
    assert alice_client.get("/audit/?page=2").content.decode().count('<tr id="audit-') == 10


def test_the_csv_is_filtered_named_and_safe_to_open_in_a_spreadsheet(alice_client, history, alice):
    log.record(alice, "automation_created", history, after={"name": '=HYPERLINK("http://evil","x")'})
    response = alice_client.get("/audit/export.csv?actor=alice")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["action"] for r in rows] == ["budget_changed", "fallback_changed", "automation_created"]
    assert rows[0]["object"] == "Alpha on OpenAI" and rows[0]["what"] == "Budget changed"
    assert rows[2]["after"].startswith('{"name": "=HYPERLINK')  # JSON text starts with {: harmless
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values())
    assert "charlie" not in str(rows)


def test_a_formula_in_any_cell_is_escaped(alice_client, alpha):
    from audit.models import AuditEntry as Entry

    Entry.objects.create(
        actor_name="=cmd|' /C calc'!A0",
        team=alpha,
        action="provider_enabled",
        object_type="team",
        object_id=str(alpha.pk),
    )
    body = b"".join(alice_client.get("/audit/export.csv").streaming_content).decode()
    assert "'=cmd|" in body and ",=cmd" not in body


def test_members_cannot_read_or_export_the_log(bob_client, history):
    assert bob_client.get("/audit/").status_code == 403
    assert bob_client.get("/audit/export.csv").status_code == 403
