"""Check the audit log's hash chain: every entry still reads as it was written, none is missing."""

import sys

from django.core.management.base import BaseCommand

from audit.log import first_broken
from audit.models import AuditEntry


class Command(BaseCommand):
    help = "Verify the audit log's hash chain; report the first entry that does not match (exit status 1)."

    def handle(self, *args: object, **options: object) -> None:
        entries = AuditEntry.objects.order_by("pk")
        broken = first_broken(entries.iterator(chunk_size=2000))
        if broken is not None:
            self.stderr.write(
                f"Audit entry #{broken.pk} ({broken.created_at:%Y-%m-%d %H:%M:%S} {broken.actor_name} "
                f"{broken.action} {broken.object_id}) does not match its hash: it, or the entry before it, "
                "was changed, removed or inserted outside LLMHub."
            )
            sys.exit(1)
        self.stdout.write(self.style.SUCCESS(f"{entries.count()} audit entries: the hash chain is intact."))
