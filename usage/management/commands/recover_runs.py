"""End the runs whose server stopped while they ran (their lease ran out): interrupted, charged."""

from django.core.management.base import BaseCommand

from usage import recovery


class Command(BaseCommand):
    help = "End runs whose lease ran out (their server was killed or crashed): interrupted, their delivered text charged."

    def handle(self, *args: object, **options: object) -> None:
        ended = recovery.recover()
        self.stdout.write(f"Ended {ended} interrupted run{'s' if ended != 1 else ''}.")
