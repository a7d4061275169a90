"""manage.py restore DIR: check a backup, then replace the database with it (LLMHub stopped)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, connections

from ops import restore
from ops.backups import BackupError


class Command(BaseCommand):
    help = (
        "Restore a backup made by `manage.py backup`. Checks the manifest, the checksums and that the "
        "configured encryption key reads the backup's credentials before replacing anything. "
        "Stop LLMHub (every server process) first."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("folder", metavar="DIR", type=Path)
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Replace without asking (for scripts).",
        )

    def handle(self, *args, folder: Path, interactive: bool, **options) -> None:
        try:
            manifest = restore.read_manifest(folder)
            if manifest["engine"] == "postgresql":
                self.stdout.write(restore.postgres_instructions(folder))
                return
            if connection.vendor != "sqlite":
                raise CommandError("This backup is of SQLite; this LLMHub uses another database.")
            unapplied = restore.check_sqlite(folder, manifest)
            target = Path(connection.settings_dict["NAME"])
            self.stdout.write(
                f"Backup of {manifest['created_at']} (LLMHub {manifest['app_version']}) checked: files match "
                "their checksums and the configured key reads its credentials."
            )
            if (
                interactive
                and input(f"Replace {target} with it? Every LLMHub process must be stopped. Type 'yes': ")
                != "yes"
            ):
                raise CommandError("Nothing was changed.")
            connections.close_all()  # this process's own connection to the file being replaced
            kept = restore.replace_sqlite(folder, target)
        except BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"Restored {target}."))
        if kept:
            self.stdout.write(f"The database it replaced is kept as {kept}.")
        if unapplied:
            self.stdout.write(f"The backup predates {len(unapplied)} migration(s): run manage.py migrate.")
        self.stdout.write("Start LLMHub again; /readyz confirms the database and the key.")
