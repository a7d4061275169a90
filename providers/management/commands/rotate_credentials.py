"""Re-encrypt every stored credential with the newest key in LLMHUB_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand
from django.db import transaction

from audit import log
from providers import crypto
from providers.models import Provider

ACTOR = "manage.py rotate_credentials"


class Command(BaseCommand):
    help = "Re-encrypt stored credentials with the first (newest) encryption key."

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        count, unreadable = 0, []
        for provider in Provider.objects.select_for_update().exclude(credentials_encrypted=""):
            try:
                provider.credentials_encrypted = crypto.rotate(provider.credentials_encrypted)
            except crypto.CredentialsUnreadable:
                unreadable.append(provider.id)
                continue
            provider.save(update_fields=["credentials_encrypted"])
            log.record(ACTOR, "credentials_rotated", provider, after={"encrypted_with": "the newest key"})
            count += 1
        self.stdout.write(f"Re-encrypted the credentials of {count} provider(s) with the newest key.")
        if unreadable:
            self.stderr.write(
                f"No configured key reads the credentials of {', '.join(unreadable)}: left as they "
                "were. Add the key they were saved with to LLMHUB_ENCRYPTION_KEYS, or enter them again."
            )
