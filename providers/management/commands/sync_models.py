"""Refresh providers' model lists from their list endpoints and prices from the pricing library."""

import sys

from django.core.management.base import BaseCommand, CommandParser

from providers.catalog import sync_models
from providers.errors import ProviderError
from providers.models import Provider


class Command(BaseCommand):
    help = "sync_models [PROVIDER]: add the models a provider lists and date new library prices."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("provider", nargs="?", help="One provider id (default: every enabled provider)")

    def handle(self, *args: object, **options: object) -> None:
        providers = (
            Provider.objects.filter(pk=options["provider"])
            if options["provider"]
            else Provider.objects.filter(enabled=True)
        )
        if options["provider"] and not providers.exists():
            self.stderr.write(f"No provider {options['provider']!r} is configured.")
            sys.exit(1)
        failed = False
        for provider in providers:
            try:
                self.stdout.write(str(sync_models(provider)))
            except ProviderError as error:
                failed = True
                self.stderr.write(f"{provider.id}: {error}")
        if failed:
            sys.exit(1)
