"""Generate text from the command line, through the run engine like any other run: the team's
budgets, caps and fallback apply, and a Run with its usage row is recorded. Prints the answer, then
tokens and cost."""

import asyncio
import sys
from contextlib import aclosing
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Team
from providers.base import Delta, Message
from providers.registry import UnknownProvider, registry
from usage import fallback, runs
from usage.events import Ended
from usage.models import Run


class Command(BaseCommand):
    help = 'Generate text: `generate openai/gpt-4o "Write a haiku" --stream [--team TEAM]`.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="PROVIDER/MODEL, e.g. openai/gpt-4o")
        parser.add_argument("prompt")
        parser.add_argument("--team", default="", help="The team it runs for (default: the only team)")
        parser.add_argument("--system", default="", help="A system prompt")
        parser.add_argument("--max-tokens", type=int, default=None)
        parser.add_argument("--temperature", type=float, default=None)
        parser.add_argument("--stream", action="store_true", help="Print the text as it arrives")
        parser.add_argument(
            "--allow-unpriced",
            action="store_true",
            help="Run a model with no known price (its cost is recorded as unknown, not $0)",
        )

    def handle(self, *args: object, **options: object) -> None:
        team = _team(options["team"])
        ref = options["model"]
        entry = _model(ref)
        if not entry.info.priced and not options["allow_unpriced"]:
            raise CommandError(
                f"{ref} has no known price. Set one in the admin, or pass --allow-unpriced to run it anyway."
            )
        messages = [Message("user", options["prompt"])]
        if options["system"]:
            messages.insert(0, Message("system", options["system"]))
        temperature = options["temperature"]
        try:
            run = runs.create_run(
                None,
                team,
                ref,
                messages,
                options["max_tokens"] or entry.info.max_output,
                Decimal(str(temperature)).quantize(Decimal("0.01")) if temperature is not None else None,
            )
        except runs.RunRefused as refused:
            raise CommandError(str(refused)) from None
        ended = asyncio.run(self.relay(run, options["stream"]))
        if not ended.completed:
            problem = ended.run.error_message if ended.settled else "Its usage could not be recorded."
            self.stderr.write(problem)
            sys.exit(1)
        run = ended.run
        self.stdout.write(
            f"Input tokens: {run.input_tokens} · output tokens: {run.output_tokens} · cost: {_exact(run.cost_usd)}"
        )

    async def relay(self, run: Run, stream: bool) -> Ended:
        async with aclosing(runs.stream(run)) as events:
            async for event in events:
                if isinstance(event, Delta) and stream:
                    self.stdout.write(event.text, ending="")
                    self.stdout.flush()
                elif isinstance(event, fallback.Waiting):
                    self.stderr.write(event.message)
                elif isinstance(event, Ended):
                    self.stdout.write("" if stream else event.run.output)
                    return event
        raise CommandError("The run ended without a result.")


def _team(name: str) -> Team:
    if name:
        found = Team.objects.filter(name=name).first()
        if found is None:
            names = ", ".join(Team.objects.values_list("name", flat=True)) or "none yet"
            raise CommandError(f"No team {name!r}. Teams: {names}.")
        return found
    teams = list(Team.objects.all()[:2])
    if not teams:
        raise CommandError(
            "No team exists yet: create the first admin in the browser (that makes a team), then run this."
        )
    if len(teams) > 1:
        names = ", ".join(Team.objects.values_list("name", flat=True))
        raise CommandError(f"There are several teams ({names}): name one with --team.")
    return teams[0]


def _model(ref: str):
    provider_id, _, model = ref.partition("/")
    if not model:
        raise CommandError("Name the model as PROVIDER/MODEL, e.g. openai/gpt-4o.")
    try:
        adapter = registry.get(provider_id)
    except UnknownProvider as exc:
        raise CommandError(str(exc)) from None
    if provider_id not in {provider.id for provider in registry.list_enabled()}:
        raise CommandError(f"Provider '{provider_id}' is disabled.")
    entry = registry.model_info(ref)
    if entry is None:
        known = ", ".join(m.id for m in adapter.list_models())
        raise CommandError(f"{adapter.display_name} has no model {model!r}. Known: {known}.")
    return entry


def _exact(cost) -> str:
    """The cost as recorded, every digit: this line is read by scripts as well as people."""
    return "unpriced" if cost is None else f"${cost.normalize():f}"
