"""Write the settlements spooled while the database was unavailable (each exactly once)."""

import sys

from django.core.management.base import BaseCommand

from usage import records, spool


class Command(BaseCommand):
    help = "Write the settlements spooled while the database was unavailable; exit 1 if some still wait."

    def handle(self, *args, **options) -> None:
        if not spool.pending():
            self.stdout.write("The settlement spool is empty.")
            return
        replayed = records.replay_spool()
        noun = "settlement" if replayed.written == 1 else "settlements"
        self.stdout.write(
            f"{replayed.written} spooled {noun} written, {replayed.skipped} already recorded, "
            f"{replayed.left} waiting."
        )
        if replayed.rejected:
            self.stdout.write(f"{replayed.rejected} unreadable line(s) moved to {spool.path()}.rejected.")
        if replayed.left:
            self.stdout.write(
                f"The database is still unavailable: {replayed.fault or 'another process is replaying'}"
            )
            sys.exit(1)
