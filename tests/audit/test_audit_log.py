from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from audit import log
from audit.models import AppendOnly, AuditEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry(alice, alpha):
    return log.record(alice, "provider_enabled", alpha, before={"enabled": False}, after={"enabled": True})


def test_it_records_who_did_what_with_before_and_after(entry):
    assert (entry.actor_name, entry.action, entry.object_type) == ("alice", "provider_enabled", "team")
    assert (entry.before, entry.after) == ({"enabled": False}, {"enabled": True})


def test_it_never_stores_a_secret_even_if_handed_one(alice, alpha):
    entry = log.record(
        alice,
        "credentials_updated",
        alpha,
        after={"api_key": "sk-live-zzzzzzzzzzzz1234", "masked_key": "sk-...1234"},
    )
    assert entry.after == {"api_key": "(changed)", "masked_key": "sk-...1234"}


def test_entries_cannot_be_edited_or_deleted_through_the_orm(entry):
    entry.action = "something_else"
    with pytest.raises(AppendOnly):
        entry.save()
    with pytest.raises(AppendOnly):
        entry.delete()
    with pytest.raises(AppendOnly):
        AuditEntry.objects.all().update(action="x")
    with pytest.raises(AppendOnly):
        AuditEntry.objects.all().delete()


def test_the_database_refuses_edits_and_deletes_too(entry):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_guard SET locked = 1")  # as in every real database
    for sql in ("UPDATE audit_auditentry SET action = 'x'", "DELETE FROM audit_auditentry"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)
    assert AuditEntry.objects.get().action == "provider_enabled"


def test_deleting_a_user_keeps_their_entries(entry, alice):
    alice.delete()
    assert AuditEntry.objects.get().actor_name == "alice"


def test_the_admin_offers_no_way_to_change_entries(entry, admin_client):
    assert admin_client.get(f"/admin/audit/auditentry/{entry.pk}/delete/").status_code == 403
    page = admin_client.get(f"/admin/audit/auditentry/{entry.pk}/change/").content.decode()
    assert 'type="submit"' not in page or "Save" not in page
