"""python manage.py create_api_key --team TEAM --name NAME [--model REF ...] [--rpm N] [--tpm N]:
prints the key once."""

from __future__ import annotations

from argparse import ArgumentTypeError

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Team
from gateway import keys


def per_minute(value: str) -> int:
    """A rate limit as the API keys page takes it: a whole number from 1 (no option: no limit)."""
    if not value.isdigit() or int(value) < 1:
        raise ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return int(value)


class Command(BaseCommand):
    help = "Create a team API key for the OpenAI-compatible API and print it (it is stored hashed)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--team", required=True, help="The team's name")
        parser.add_argument("--name", required=True, help="What uses the key, e.g. 'CI summarizer'")
        parser.add_argument(
            "--model",
            action="append",
            default=[],
            dest="models",
            help="A model ref or alias the key may use (repeat; default: all)",
        )
        parser.add_argument("--allow-unpriced", action="store_true", help="Allow models with no known price")
        parser.add_argument("--rpm", type=per_minute, help="Requests per minute (default: no limit)")
        parser.add_argument("--tpm", type=per_minute, help="Tokens per minute (default: no limit)")

    def handle(self, *args, team: str, name: str, models: list[str], allow_unpriced: bool, **options) -> None:
        rpm, tpm = options["rpm"], options["tpm"]
        found = Team.objects.filter(name=team).first()
        if found is None:
            names = ", ".join(Team.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"No team {team!r}. Teams: {names}.")
        created = keys.create(
            found,
            name,
            allowed_models=models,
            allow_unpriced=allow_unpriced,
            actor="manage.py create_api_key",
            requests_per_minute=rpm,
            tokens_per_minute=tpm,
        )
        self.stdout.write(created.secret)
        self.stderr.write(
            f"API key {name!r} for team {found.name} ({created.key.masked}). It is shown only now."
        )
