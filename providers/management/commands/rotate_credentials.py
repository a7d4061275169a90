"""Re-encrypt every stored credential with the newest key in LLMHUB_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand
from django.db import transaction

from providers import crypto
from providers.models import Provider


class Command(BaseCommand):
    help = "Re-encrypt stored credentials with the first (newest) encryption key."

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        count = 0
        for provider in Provider.objects.select_for_update().exclude(credentials_encrypted=""):
            provider.credentials_encrypted = crypto.rotate(provider.credentials_encrypted)
            provider.save(update_fields=["credentials_encrypted"])
            count += 1
        self.stdout.write(f"Re-encrypted the credentials of {count} provider(s) with the newest key.")
