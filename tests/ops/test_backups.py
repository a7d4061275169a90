"""Backups taken while the app writes restore to a consistent database; restores check before they touch."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from io import StringIO
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction

from audit import log
from ops import backups, restore
from ops.backups import BackupError
from providers.base import TokenCount
from tests.conftest import GOOD_KEYS
from tests.ops.conftest import ROOT
from usage.records import record_usage

pytestmark = pytest.mark.django_db(transaction=True)
sqlite_only = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite backups")


def rows(path: Path, table: str) -> dict[int, tuple]:
    with sqlite3.connect(path) as db:
        return {row[0]: row for row in db.execute(f"SELECT * FROM {table} ORDER BY id")}


def write_load(team, stop: threading.Event, written: list[int], number: int) -> None:
    """One writer: a usage row and its audit entry in one transaction, again and again."""
    try:
        while not stop.is_set():
            with transaction.atomic():
                usage = record_usage("openai", "gpt-4o-mini", TokenCount(100, 20), "run", team=team)
                log.record("system", "load_test", usage, team=team, after={"writer": number})
            written.append(usage.pk)
    finally:
        connection.close()


@sqlite_only
def test_a_backup_under_write_load_restores_to_matching_usage_rows_and_audit_log(
    alpha, openai_provider, tmp_path
):
    stop, written = threading.Event(), []
    writers = [threading.Thread(target=write_load, args=(alpha, stop, written, n)) for n in range(3)]
    for writer in writers:
        writer.start()
    try:
        deadline = time.monotonic() + 30
        while len(written) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        out = StringIO()
        call_command("backup", str(tmp_path / "backup"), stdout=out)
        taken_after = len(written)
        while len(written) < taken_after + 20 and time.monotonic() < deadline:
            time.sleep(0.01)  # the load goes on after the backup
    finally:
        stop.set()
        for writer in writers:
            writer.join(30)
    assert "The encryption key is NOT in this backup" in out.getvalue()

    restored = restore.restore_sqlite(tmp_path / "backup", tmp_path / "restored.sqlite3").replaced
    live_path = Path(connection.settings_dict["NAME"])
    # Rows are never edited after they are written: the copy's rows equal the live ones, one for one.
    # (Roll-ups keep growing after the backup; they are checked against the copy's own usage rows.)
    for table in ("usage_usagerecord", "audit_auditentry", "providers_provider"):
        live, copy = rows(live_path, table), rows(restored, table)
        assert copy and all(live[pk] == row for pk, row in copy.items()), table  # row for row as written
    usage = rows(restored, "usage_usagerecord")
    assert 30 <= len(usage) < len(rows(live_path, "usage_usagerecord"))  # taken mid-load
    with sqlite3.connect(restored) as db:
        audited = db.execute("SELECT object_id FROM audit_auditentry WHERE action = 'load_test'").fetchall()
        rolled_up = db.execute("SELECT SUM(runs), SUM(input_tokens) FROM usage_dailyspend").fetchone()
    assert sorted(int(pk) for (pk,) in audited) == sorted(usage)  # whole transactions only
    assert rolled_up == (len(usage), 100 * len(usage))


@sqlite_only
def test_a_backup_holds_a_manifest_and_never_the_key(openai_provider, tmp_path):
    folder = tmp_path / "backup"
    call_command("backup", str(folder), stdout=StringIO())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["engine"] == "sqlite" and manifest["app_version"]
    assert manifest["files"]["llmhub.sqlite3"]["sha256"] == backups.sha256_of(folder / "llmhub.sqlite3")
    assert "0012_run_and_usage_request_id" in manifest["migrations"]["usage"]
    assert manifest["counts"]["providers"] == 1
    assert manifest["encryption_key_fingerprint"] == backups.key_fingerprint(
        settings.LLMHUB_ENCRYPTION_KEYS[0]
    )
    for path in folder.iterdir():
        content = path.read_bytes()
        assert settings.LLMHUB_ENCRYPTION_KEYS[0].encode() not in content
        assert GOOD_KEYS["openai"].encode() not in content
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(CommandError, match="already holds a backup"):
        call_command("backup", str(folder), stdout=StringIO())


@pytest.fixture
def backup(openai_provider, tmp_path) -> Path:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite backups")
    call_command("backup", str(tmp_path / "backup"), stdout=StringIO())
    return tmp_path / "backup"


@pytest.fixture
def target(tmp_path) -> Path:
    """A database in use that a restore would replace: WAL mode, as LLMHub runs SQLite."""
    path = tmp_path / "live" / "llmhub.sqlite3"
    path.parent.mkdir()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE sentinel (value TEXT)")
        db.execute("INSERT INTO sentinel VALUES ('the database before the restore')")
    return path


def untouched(target: Path) -> bool:
    with sqlite3.connect(target) as db:
        return db.execute("SELECT value FROM sentinel").fetchone() == ("the database before the restore",)


def test_a_restore_keeps_the_replaced_database_beside_it(backup, target):
    result = restore.restore_sqlite(backup, target)
    assert not Path(f"{target}-wal").exists()  # the old database's log would be replayed into the new one
    assert rows(target, "providers_provider") and result.kept_as and untouched(result.kept_as)
    assert result.unapplied == []


def test_a_restore_refuses_a_key_that_cannot_read_the_credentials(backup, target, settings):
    settings.LLMHUB_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(BackupError, match="cannot read the stored credentials of openai") as refused:
        restore.restore_sqlite(backup, target)
    assert "Nothing was changed" in str(refused.value) and untouched(target)
    assert json.loads((backup / "manifest.json").read_text())["encryption_key_fingerprint"] in str(
        refused.value
    )


def test_a_restore_refuses_a_damaged_or_incomplete_backup(backup, target):
    database = backup / "llmhub.sqlite3"
    content = bytearray(database.read_bytes())
    content[5000] ^= 0xFF
    database.write_bytes(bytes(content))
    with pytest.raises(BackupError, match="does not match its checksum"):
        restore.restore_sqlite(backup, target)
    (backup / "manifest.json").unlink()
    with pytest.raises(BackupError, match="not a complete LLMHub backup"):
        restore.restore_sqlite(backup, target)
    assert untouched(target)


def test_a_restore_refuses_a_backup_from_a_newer_version(backup, target):
    database = backup / "llmhub.sqlite3"
    with sqlite3.connect(database) as db:
        db.execute(
            "INSERT INTO django_migrations (app, name, applied) VALUES ('usage', '9999_future', '2030-01-01')"
        )
    manifest = json.loads((backup / "manifest.json").read_text())
    manifest["files"]["llmhub.sqlite3"] = {
        "sha256": backups.sha256_of(database),
        "bytes": database.stat().st_size,
    }
    (backup / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        BackupError, match=r"newer LLMHub.*usage\.9999_future|usage\.9999_future.*newer LLMHub"
    ):
        restore.restore_sqlite(backup, target)
    assert untouched(target)


def test_a_restore_refuses_a_database_still_in_use(backup, target):
    reader = sqlite3.connect(target)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM sentinel").fetchall()  # a server in the middle of a read
    try:
        with pytest.raises(BackupError, match="stop LLMHub"):
            restore.restore_sqlite(backup, target)
    finally:
        reader.close()
    assert untouched(target)


def test_the_restore_command_asks_first_and_replaces_on_yes(backup, target):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMHUB_", "DATABASE_URL"))}
    env.update(
        DATABASE_URL=f"sqlite:///{target}",
        LLMHUB_DATA_DIR=str(target.parent),
        LLMHUB_ENCRYPTION_KEYS=",".join(settings.LLMHUB_ENCRYPTION_KEYS),
    )

    def command(answer: str) -> subprocess.CompletedProcess:
        arguments = [sys.executable, "manage.py", "restore", str(backup)]
        return subprocess.run(
            arguments, input=answer, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )

    declined = command("no\n")
    assert declined.returncode == 1 and "Nothing was changed." in declined.stderr and untouched(target)
    accepted = command("yes\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "Restored" in accepted.stdout and "kept as" in accepted.stdout
    assert rows(target, "providers_provider")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL backups")
def test_a_postgresql_backup_is_a_pg_dump_with_its_manifest(openai_provider, tmp_path):
    out = StringIO()
    call_command("backup", str(tmp_path / "backup"), stdout=out)
    dump = tmp_path / "backup" / "llmhub.pgdump"
    assert dump.read_bytes()[:5] == b"PGDMP"
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert manifest["engine"] == "postgresql" and manifest["counts"]["providers"] == 1
    assert manifest["files"]["llmhub.pgdump"]["sha256"] == backups.sha256_of(dump)
    assert "The encryption key is NOT in this backup" in out.getvalue()
    restored = StringIO()
    call_command("restore", str(tmp_path / "backup"), "--noinput", stdout=restored)
    assert "pg_restore --no-owner" in restored.getvalue()
