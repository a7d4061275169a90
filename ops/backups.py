"""Backups of the database with a checksum manifest, and restores that check before they replace.

SQLite: a consistent copy taken while the app runs, with SQLite's online backup API (one step: the
copy is one read transaction, so it holds whole transactions only). PostgreSQL: `pg_dump` in its
custom format, when the binary is installed. Either way the folder gets `manifest.json`: sha256 and
size of each file, app version, applied migrations, row counts and time, written last, so a folder
with a manifest holds a complete backup.

The encryption key is never copied: a backup and its key kept apart means that neither alone gives
away the provider credentials. A restore refuses a backup whose credentials the configured keys
cannot read, before it touches anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from glob import glob
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from django.conf import settings
from django.utils import timezone

MANIFEST = "manifest.json"
SQLITE_FILE = "llmhub.sqlite3"
POSTGRES_FILE = "llmhub.pgdump"
# Tables counted in the manifest, so an operator can see at a glance what a backup holds.
COUNTED = {
    "runs": "usage_run",
    "usage_records": "usage_usagerecord",
    "audit_entries": "audit_auditentry",
    "providers": "providers_provider",
}


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Restored:
    replaced: Path
    kept_as: Path | None  # the database that was there before, kept beside it
    unapplied: list[str]  # migrations of this code the backup predates: run migrate


def app_version() -> str:
    try:
        return version("llmhub")
    except PackageNotFoundError:
        return "unknown"


def key_fingerprint(key: str) -> str:
    """Which key a backup needs, without the key: the first 16 hex digits of its sha256."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _prepare_folder(folder: Path) -> None:
    if (folder / MANIFEST).exists():
        raise BackupError(f"{folder} already holds a backup: give each backup its own folder.")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def _write_manifest(folder: Path, engine: str, files: list[Path], migrations: dict, counts: dict) -> dict:
    manifest = {
        "format": 1,
        "app": "llmhub",
        "app_version": app_version(),
        "engine": engine,
        "created_at": timezone.now().isoformat(),
        "files": {p.name: {"sha256": sha256_of(p), "bytes": p.stat().st_size} for p in files},
        "migrations": migrations,
        "counts": counts,
        "encryption_key": "not included: keep it apart from this backup",
        "encryption_key_fingerprint": key_fingerprint(settings.LLMHUB_ENCRYPTION_KEYS[0]),
    }
    partial = folder / (MANIFEST + ".partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    os.chmod(partial, 0o600)
    os.replace(partial, folder / MANIFEST)
    return manifest


def _describe(db: sqlite3.Connection) -> tuple[dict, dict]:
    """Applied migrations by app, and row counts, of a SQLite database."""
    migrations: dict[str, list[str]] = {}
    for app, name in db.execute("SELECT app, name FROM django_migrations ORDER BY app, name"):
        migrations.setdefault(app, []).append(name)
    counts = {
        label: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] for label, table in COUNTED.items()
    }
    return migrations, counts


def backup_sqlite(source: Path, folder: Path) -> dict:
    """Copy a live SQLite database into `folder` and write its manifest; returns the manifest."""
    _prepare_folder(folder)
    partial = folder / (SQLITE_FILE + ".partial")
    partial.unlink(missing_ok=True)
    source_db, copy = sqlite3.connect(source, timeout=60), sqlite3.connect(partial)
    try:
        source_db.backup(copy)  # all pages in one step: a single consistent snapshot
        if copy.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise BackupError("The copy failed SQLite's integrity check; the source may be damaged.")
        migrations, counts = _describe(copy)
    finally:
        copy.close()
        source_db.close()
    os.chmod(partial, 0o600)
    _fsync(partial)
    target = folder / SQLITE_FILE
    os.replace(partial, target)
    return _write_manifest(folder, "sqlite", [target], migrations, counts)


def pg_dump_binary() -> str | None:
    """pg_dump on the PATH, else the newest of Debian's versioned PostgreSQL installs."""
    installed = sorted(glob("/usr/lib/postgresql/*/bin/pg_dump"), reverse=True)
    return shutil.which("pg_dump") or (installed[0] if installed else None)


def backup_postgres(database: dict, folder: Path) -> dict:
    """`pg_dump --format=custom` of the configured database into `folder`, with its manifest."""
    binary = pg_dump_binary()
    if binary is None:
        raise BackupError(
            "pg_dump is not installed here. Install PostgreSQL's client (Debian: apt-get install "
            "postgresql-client) or run it where it is:\n  pg_dump --format=custom --file llmhub.pgdump "
            "DATABASE_URL\nand keep the encryption key apart from the dump."
        )
    _prepare_folder(folder)
    target = folder / POSTGRES_FILE
    partial = folder / (POSTGRES_FILE + ".partial")
    # The password goes through the environment, never the command line (visible in ps).
    env = {**os.environ, "PGPASSWORD": str(database.get("PASSWORD") or "")}
    command = [binary, "--format=custom", "--file", str(partial), "--dbname", database["NAME"]]
    for flag, key in (("--host", "HOST"), ("--port", "PORT"), ("--username", "USER")):
        if database.get(key):
            command += [flag, str(database[key])]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed ({result.returncode}): {result.stderr.strip()[:500]}")
    os.chmod(partial, 0o600)
    os.replace(partial, target)
    migrations, counts = _describe_connection()
    return _write_manifest(folder, "postgresql", [target], migrations, counts)


def _describe_connection() -> tuple[dict, dict]:
    from django.db import connection

    migrations: dict[str, list[str]] = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT app, name FROM django_migrations ORDER BY app, name")
        for app, name in cursor.fetchall():
            migrations.setdefault(app, []).append(name)
        counts = {}
        for label, table in COUNTED.items():
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            counts[label] = cursor.fetchone()[0]
    return migrations, counts


def _fsync(path: Path) -> None:
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())
