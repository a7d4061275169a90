"""Re-read the providers file (LLMHUB_PROVIDERS_FILE and providers.d/*.toml) without a restart."""

import sys

from django.core.management.base import BaseCommand

from providers.registry import registry


class Command(BaseCommand):
    help = "Reload declarative providers. A malformed file changes nothing and is reported; exit status 1."

    def handle(self, *args: object, **options: object) -> None:
        error = registry.reload()
        if error:
            self.stderr.write(error)
            self.stderr.write("Nothing was changed: the providers already configured keep running.")
            sys.exit(1)
        kinds = [kind for kind in registry.kinds() if kind.source != "builtin"]
        names = ", ".join(f"{kind.id} ({kind.source})" for kind in kinds) or "none"
        self.stdout.write(f"Providers from files: {names}.")
