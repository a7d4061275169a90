"""Rebuild the daily roll-ups from the usage rows (and the team roll-ups from them), or (--check)
report where they differ."""

import sys

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from accounts.models import Team, User
from gateway.models import ApiKey
from providers.pricing import format_usd
from usage import rollups, team_rollups
from usage.models import CallKind


class Command(BaseCommand):
    help = "Rebuild the daily spend roll-ups from the usage rows; --check only compares them (exit 1 on a difference)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true", help="Report differences; change nothing")

    def handle(self, *args, check: bool = False, **options) -> None:
        if not check:
            with transaction.atomic():
                written, read = rollups.rebuild()
                team_rollups.refill()
            self.stdout.write(f"Rebuilt {written} roll-ups from {read} usage rows.")
            return
        differences, team = rollups.differences(), team_rollups.differences()
        if not differences and not team:
            self.stdout.write("The roll-ups equal the usage rows.")
            return
        names = _names(differences + team)
        if differences:
            self.stdout.write(f"{len(differences)} roll-ups differ from the usage rows:")
        for difference in differences:
            self.stdout.write(f"  {_describe(difference, names)}")
        if team:
            self.stdout.write(f"{len(team)} team roll-ups differ from the daily roll-ups they sum:")
        for difference in team:
            self.stdout.write(f"  {_describe(difference, names)}")
        self.stdout.write("Run `manage.py rebuild_rollups` to rebuild them.")
        sys.exit(1)


def _names(differences: list[rollups.Difference]) -> dict[tuple[str, int], str]:
    """Team, user and key names of the differences, in three queries."""
    wanted = {
        "team": (Team, {d.team_id for d in differences}, "name"),
        "user": (User, {d.user_id for d in differences}, "username"),
        "key": (ApiKey, {d.api_key_id for d in differences}, "name"),
    }
    names = {}
    for kind, (model, ids, field) in wanted.items():
        for pk, name in model.objects.filter(pk__in=ids - {None}).values_list("pk", field):
            names[kind, pk] = name
    return names


def _describe(difference: rollups.Difference, names: dict) -> str:
    who = [names.get(("team", difference.team_id), "no team")]
    if difference.user_id:
        who.append(f"user {names.get(('user', difference.user_id), difference.user_id)}")
    if difference.api_key_id:
        who.append(f"API key {names.get(('key', difference.api_key_id), difference.api_key_id)}")
    rollup, usage = difference.rollup, difference.usage
    kind = "" if difference.kind == CallKind.GENERATION else f" ({difference.kind})"
    duplicates = f" in {rollup.rows} rows for one key" if rollup.rows > 1 else ""
    return (
        f"{difference.day} {' '.join(who)} {difference.provider_id}/{difference.model}{kind}: "
        f"{difference.name} {_runs(rollup.runs)} {format_usd(rollup.cost_usd)}{duplicates}, "
        f"{difference.against} {_runs(usage.runs)} {format_usd(usage.cost_usd)}"
        f" ({usage.input_tokens:,} in / {usage.output_tokens:,} out; roll-up {rollup.input_tokens:,} / {rollup.output_tokens:,})"
    )


def _runs(count: int) -> str:
    return "1 run" if count == 1 else f"{count} runs"
