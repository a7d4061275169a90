"""Check a provider's stored credentials against the provider itself (a free model-list call)."""

import asyncio
import sys

from django.core.management.base import BaseCommand, CommandParser

from providers.errors import ProviderError
from providers.registry import UnknownProvider, registry


class Command(BaseCommand):
    help = "Test a provider's connection and credentials. Exit status 1 on failure."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("provider_id")

    def handle(self, *args: object, **options: object) -> None:
        provider_id = options["provider_id"]
        try:
            asyncio.run(registry.validate(provider_id))
        except (ProviderError, UnknownProvider) as exc:
            self.stderr.write(str(exc))
            sys.exit(1)
        adapter = registry.get(provider_id)
        self.stdout.write(self.style.SUCCESS(f"✓ {adapter.display_name}: connection and credentials work."))
