"""Remove stored credentials that no configured key can read, after an encryption key was lost."""

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from audit import log
from providers.crypto import CredentialsUnreadable
from providers.models import Provider

ACTOR = "manage.py forget_credentials"


class Command(BaseCommand):
    help = "Remove the stored credentials that no configured encryption key reads (they are entered again)."
    requires_system_checks = []  # it is what the failing encryption-key check tells an operator to run

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--unreadable",
            action="store_true",
            required=True,
            help="Only the unreadable ones (the only kind this command removes).",
        )

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        if not options["unreadable"]:
            raise CommandError("Pass --unreadable.")
        forgotten = []
        for provider in Provider.objects.select_for_update().exclude(credentials_encrypted=""):
            try:
                provider.credentials()
            except CredentialsUnreadable:
                provider.credentials_encrypted = ""
                provider.enabled = False
                provider.save(update_fields=["credentials_encrypted", "enabled"])
                log.record(
                    ACTOR, "credentials_removed", provider, after={"reason": "unreadable", "enabled": False}
                )
                forgotten.append(provider.id)
        self.stdout.write(
            f"Removed the unreadable credentials of {', '.join(forgotten)} and disabled them: enter their keys "
            "again in Settings → Providers."
            if forgotten
            else "Every stored credential is readable: nothing removed."
        )
