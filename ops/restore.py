"""Restoring a backup (ops.backups): every check first, then one atomic replace.

Checks, in order, before anything is touched: the manifest is there and is ours; each file has the
size and sha256 it lists; the SQLite copy passes its integrity check; it has no migration this code
does not know (a backup from a newer version); the configured encryption keys read every stored
credential in it. Only then is the copy written beside the live database and renamed over it (a
rename is atomic); the database that was there is kept as `<name>.before-restore-<time>`.

LLMHub must be stopped while it restores: a running server would keep writing to the old file.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

from django.conf import settings
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from ops.backups import (
    MANIFEST,
    POSTGRES_FILE,
    SQLITE_FILE,
    BackupError,
    Restored,
    key_fingerprint,
    sha256_of,
)
from providers import crypto


def read_manifest(folder: Path) -> dict:
    """The manifest of a backup folder, each file checked against its size and checksum."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{folder} holds no {MANIFEST}: it is not a complete LLMHub backup.") from None
    except json.JSONDecodeError:
        raise BackupError(f"{folder / MANIFEST} is not valid JSON: the backup is damaged.") from None
    if manifest.get("app") != "llmhub" or manifest.get("format") != 1:
        raise BackupError(f"{folder / MANIFEST} is not the manifest of an LLMHub backup.")
    for name, expected in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise BackupError(f"{path} is missing: the backup is incomplete.")
        if path.stat().st_size != expected["bytes"] or sha256_of(path) != expected["sha256"]:
            raise BackupError(f"{path} does not match its checksum in the manifest: the backup is damaged.")
    return manifest


def check_sqlite(folder: Path, manifest: dict) -> list[str]:
    """Everything a SQLite restore checks; returns this code's migrations the backup lacks."""
    if manifest["engine"] != "sqlite":
        raise BackupError(f"This backup is of a {manifest['engine']} database; this LLMHub uses SQLite.")
    copy = sqlite3.connect(f"file:{folder / SQLITE_FILE}?mode=ro", uri=True)
    try:
        if copy.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise BackupError("The backup's database fails SQLite's integrity check: it is damaged.")
        applied = set(copy.execute("SELECT app, name FROM django_migrations").fetchall())
        stored = copy.execute(
            "SELECT id, credentials_encrypted FROM providers_provider WHERE credentials_encrypted <> ''"
        ).fetchall()
    finally:
        copy.close()
    known = set(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
    newer = sorted(applied - known)
    if newer:
        names = ", ".join(f"{app}.{name}" for app, name in newer[:5])
        raise BackupError(
            f"The backup has migrations this version does not know ({names}): it was taken by a newer "
            "LLMHub. Upgrade this installation first, then restore."
        )
    check_credentials(stored, manifest)
    return sorted(f"{app}.{name}" for app, name in known - applied)


def check_credentials(stored: list[tuple[str, str]], manifest: dict) -> None:
    """Every stored credential decrypts with the configured keys (LLMHUB_ENCRYPTION_KEYS)."""
    unreadable = []
    for provider_id, token in stored:
        try:
            crypto.decrypt(token)
        except crypto.CredentialsUnreadable:
            unreadable.append(provider_id)
    if unreadable:
        wanted = manifest.get("encryption_key_fingerprint", "unknown")
        have = ", ".join(key_fingerprint(key) for key in settings.LLMHUB_ENCRYPTION_KEYS)
        raise BackupError(
            f"The configured encryption keys cannot read the stored credentials of {', '.join(sorted(unreadable))}. "
            f"The backup was taken with the key whose fingerprint is {wanted}; the configured keys have "
            f"{have}. Set LLMHUB_ENCRYPTION_KEYS (or data/encryption.key) to the key kept with the "
            "backup's records. Nothing was changed."
        )


def replace_sqlite(folder: Path, target: Path) -> Path | None:
    """Put the backup's database at `target` atomically; the old one is kept beside it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    incoming = target.with_name(f".{target.name}.restoring")
    shutil.copyfile(folder / SQLITE_FILE, incoming)
    os.chmod(incoming, 0o600)
    with incoming.open("rb+") as handle:
        os.fsync(handle.fileno())
    kept = None
    if target.exists():
        _checkpoint(target)
        kept = target.with_name(f"{target.name}.before-restore-{timezone.now():%Y%m%d-%H%M%S}")
        shutil.copyfile(target, kept)
        os.chmod(kept, 0o600)
    os.replace(incoming, target)
    # The old database's write-ahead log was checkpointed into it (and kept with it): a stale log
    # beside the new file would be replayed into it.
    for suffix in ("-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    return kept


def _checkpoint(target: Path) -> None:
    """Fold the live database's write-ahead log into it; refuse if a process still uses it."""
    db = sqlite3.connect(target, timeout=5)
    try:
        busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.OperationalError:
        busy = 1
    finally:
        db.close()
    if busy:
        raise BackupError(f"{target} is in use: stop LLMHub (every server process) before restoring.")


def restore_sqlite(folder: Path, target: Path) -> Restored:
    manifest = read_manifest(folder)
    unapplied = check_sqlite(folder, manifest)
    kept = replace_sqlite(folder, target)
    return Restored(target, kept, unapplied)


def postgres_instructions(folder: Path) -> str:
    return (
        f"This backup is a pg_dump file ({folder / POSTGRES_FILE}). Restore it into a new, empty database, "
        "check it, then point LLMHub at it:\n"
        "  createdb llmhub_restored\n"
        f"  pg_restore --no-owner --dbname llmhub_restored {folder / POSTGRES_FILE}\n"
        "  DATABASE_URL=postgres://.../llmhub_restored manage.py migrate   (if this version is newer)\n"
        "  then start LLMHub with that DATABASE_URL and the backup's encryption key: /readyz says whether "
        "the key reads the stored credentials."
    )
