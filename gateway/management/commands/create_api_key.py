"""python manage.py create_api_key --team TEAM --name NAME [--model REF ...]: prints the key once."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Team
from gateway import keys


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

    def handle(self, *args, team: str, name: str, models: list[str], allow_unpriced: bool, **options) -> None:
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
        )
        self.stdout.write(created.secret)
        self.stderr.write(
            f"API key {name!r} for team {found.name} ({created.key.masked}). It is shown only now."
        )
