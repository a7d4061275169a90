"""The audit log's hash chain: each entry's hash covers its content and the previous entry's hash,
so `manage.py verify_audit` finds the first entry changed, removed or inserted behind the app's back."""

from __future__ import annotations

import importlib
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit import log
from audit.models import AuditEntry

pytestmark = pytest.mark.django_db


def verify() -> tuple[int, str]:
    try:
        call_command("verify_audit", stdout=(out := _Buffer()), stderr=out)
    except SystemExit as exit_:
        return exit_.code, out.text
    return 0, out.text


class _Buffer:
    text = ""

    def write(self, value: str) -> None:
        self.text += value

    def flush(self) -> None:
        pass


@pytest.fixture
def entries(alice, alpha):
    return [log.record(alice, "provider_enabled", alpha, after={"n": n, "price": "0.59"}) for n in range(5)]


def test_an_untouched_log_verifies(entries):
    assert verify() == (0, "5 audit entries: the hash chain is intact.\n")


def test_a_changed_entry_is_named(entries):
    with connection.cursor() as cursor:  # someone with database access, triggers dropped
        cursor.execute("UPDATE audit_auditentry SET after = %s WHERE id = %s", ['{"n": 99}', entries[2].pk])
    code, text = verify()
    assert code == 1 and f"Audit entry #{entries[2].pk} " in text


def test_a_removed_entry_shows_at_the_next_one(entries):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditentry WHERE id = %s", [entries[1].pk])
    code, text = verify()
    assert code == 1 and f"Audit entry #{entries[2].pk} " in text


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_one_chain(alice, alpha):
    def write(n: int) -> None:
        try:
            for i in range(5):
                log.record(alice, "budget_changed", alpha, after={"writer": n, "i": i})
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert AuditEntry.objects.count() == 20
    assert verify()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_the_migration_chains_entries_written_before_it(alice, alpha):
    for n in range(3):
        log.record(alice, "provider_enabled", alpha, after={"n": n})
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditentry SET chain_hash = ''")
    assert verify()[0] == 1
    migration = importlib.import_module("audit.migrations.0003_audit_hash_chain")
    state = MigrationExecutor(connection).loader.project_state(("audit", "0003_audit_hash_chain"))
    with connection.schema_editor() as editor:
        migration.chain_existing_entries(state.apps, editor)
    assert verify()[0] == 0
