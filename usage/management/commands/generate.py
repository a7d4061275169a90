"""Generate text from the command line: prints the answer, then tokens and cost, and records usage."""

import asyncio
import sys
import uuid
from contextlib import aclosing

from django.core.management.base import BaseCommand, CommandError, CommandParser

from providers.base import Delta, Finished, GenerationRequest, GenerationResponse, Message
from providers.errors import ProviderError
from providers.registry import UnknownProvider, registry
from usage.records import arecord_usage


class Command(BaseCommand):
    help = 'Generate text: `generate openai/gpt-4o "Write a haiku" --stream`.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model", help="PROVIDER/MODEL, e.g. openai/gpt-4o")
        parser.add_argument("prompt")
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
        provider_id, _, model = options["model"].partition("/")
        if not model:
            raise CommandError("Name the model as PROVIDER/MODEL, e.g. openai/gpt-4o.")
        try:
            adapter = registry.get(provider_id)
        except UnknownProvider as exc:
            raise CommandError(str(exc)) from None
        if provider_id not in {provider.id for provider in registry.list_enabled()}:
            raise CommandError(f"Provider '{provider_id}' is disabled.")
        entry = registry.model_info(options["model"])
        if entry is None:
            known = ", ".join(m.id for m in adapter.list_models())
            raise CommandError(f"{adapter.display_name} has no model {model!r}. Known: {known}.")
        if not entry.info.priced and not options["allow_unpriced"]:
            raise CommandError(
                f"{options['model']} has no known price. Set one in the admin, or pass "
                "--allow-unpriced to run it anyway."
            )
        messages = [Message("user", options["prompt"])]
        if options["system"]:
            messages.insert(0, Message("system", options["system"]))
        request = GenerationRequest(
            model=model,
            messages=tuple(messages),
            max_tokens=options["max_tokens"],
            temperature=options["temperature"],
            stream=options["stream"],
        )
        try:
            asyncio.run(self.run(adapter, request))
        except ProviderError as exc:
            self.stderr.write(str(exc))
            sys.exit(1)

    async def run(self, adapter, request: GenerationRequest) -> None:
        if request.stream:
            result = await self.stream(adapter, request)
        else:
            result = await adapter.generate(request)
            self.stdout.write(result.content)
        record = await arecord_usage(
            adapter.provider_id, request.model, result.usage, source="cli", run_id=uuid.uuid4().hex
        )
        self.stdout.write(
            f"Input tokens: {result.usage.input} · output tokens: {result.usage.output} · "
            f"cost: {_exact(record.cost_usd)}"
        )

    async def stream(self, adapter, request: GenerationRequest) -> GenerationResponse:
        parts: list[str] = []
        async with aclosing(adapter.stream(request)) as events:
            async for event in events:
                if isinstance(event, Delta):
                    parts.append(event.text)
                    self.stdout.write(event.text, ending="")
                    self.stdout.flush()
                elif isinstance(event, Finished):
                    self.stdout.write("")
                    return GenerationResponse("".join(parts), event.usage, event.model, event.finish_reason)
        raise CommandError("The stream ended without its final usage.")


def _exact(cost) -> str:
    """The cost as recorded, every digit: this line is read by scripts as well as people."""
    return "unpriced" if cost is None else f"${cost.normalize():f}"
