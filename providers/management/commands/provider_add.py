"""Set up a provider from the command line. Secrets come from environment variables, never argv
(argv is visible to every user of the machine in `ps` and lands in shell history)."""

import os

from django.core.management.base import BaseCommand, CommandError, CommandParser

from providers.credentials import CredentialsMissing
from providers.kinds import UnknownKind
from providers.network import AddressRefused
from providers.registry import registry


class Command(BaseCommand):
    help = "Add or update a provider, e.g. `provider_add openai --credential-env api_key=OPENAI_API_KEY`."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", help="The kind of provider: " + ", ".join(k.id for k in registry.kinds()))
        parser.add_argument("--id", default="", help="Provider id (default: the kind)")
        parser.add_argument("--name", default="", help="Display name")
        parser.add_argument("--endpoint", default="", help="API base URL, e.g. https://api.openai.com/v1")
        parser.add_argument(
            "--credential-env",
            action="append",
            default=[],
            metavar="FIELD=VAR",
            help="Read credential FIELD from environment variable VAR (repeatable)",
        )
        parser.add_argument("--disabled", action="store_true", help="Save it disabled")

    def handle(self, *args: object, **options: object) -> None:
        credentials = {}
        for item in options["credential_env"]:
            field, sep, variable = item.partition("=")
            if not sep or not field or not variable:
                raise CommandError(f"--credential-env takes FIELD=VARIABLE, got {item!r}")
            if variable not in os.environ:
                raise CommandError(f"Environment variable {variable} is not set (for {field}).")
            credentials[field] = os.environ[variable]
        try:
            provider = registry.save(
                options["kind"],
                credentials,
                provider_id=options["id"],
                display_name=options["name"],
                endpoint=options["endpoint"],
                enabled=not options["disabled"],
                private_network=True,  # whoever runs manage.py administers the machine
            )
        except (UnknownKind, CredentialsMissing, AddressRefused) as exc:
            raise CommandError(str(exc)) from None
        key = provider.masked_key()
        models = provider.models.count()
        self.stdout.write(
            f"Saved {provider.display_name} as provider '{provider.id}'"
            + (f" (key {key})" if key else "")
            + f", {models} models. Check it with: python manage.py provider_test {provider.id}"
        )
