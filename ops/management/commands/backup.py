"""manage.py backup DIR: a consistent copy of the database and its checksum manifest."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from ops import backups

KEY_REMINDER = (
    "The encryption key is NOT in this backup, by design. Keep data/encryption.key (or the value of "
    "LLMHUB_ENCRYPTION_KEYS) somewhere else, such as a password manager or a secrets vault: without it "
    "the provider credentials in the backup cannot be read; with both together, anyone can read them."
)


class Command(BaseCommand):
    help = "Back up the database into DIR (a new or empty folder) with a checksum manifest; the app may run."

    def add_arguments(self, parser) -> None:
        parser.add_argument("folder", metavar="DIR", type=Path)

    def handle(self, *args, folder: Path, **options) -> None:
        database = connection.settings_dict
        try:
            if connection.vendor == "sqlite":
                manifest = backups.backup_sqlite(Path(database["NAME"]), folder)
            elif connection.vendor == "postgresql":
                manifest = backups.backup_postgres(database, folder)
            else:
                raise CommandError(f"No backup for {connection.vendor}: use the database's own tools.")
        except backups.BackupError as error:
            raise CommandError(str(error)) from None
        counts = ", ".join(f"{n:,} {label.replace('_', ' ')}" for label, n in manifest["counts"].items())
        self.stdout.write(f"Backed up to {folder} ({manifest['engine']}): {counts}.")
        self.stdout.write(f"Key fingerprint needed to restore: {manifest['encryption_key_fingerprint']}.")
        self.stdout.write(self.style.WARNING(KEY_REMINDER))
