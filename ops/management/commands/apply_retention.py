"""manage.py apply_retention: clear run prompts and outputs older than the retention period, and
delete stored API responses past their team's retention period."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from gateway import response_store
from ops import retention


class Command(BaseCommand):
    help = (
        "Clear the prompts and outputs of runs older than LLMHUB_RETENTION_DAYS (or --days). Usage rows "
        "and spend roll-ups are kept. Also delete stored API responses (store: true) older than their "
        "team's retention period. Server processes also do this every LLMHUB_RETENTION_INTERVAL seconds."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=None, help="Override LLMHUB_RETENTION_DAYS once.")

    def handle(self, *args, days: int | None, **options) -> None:
        days = settings.LLMHUB_RETENTION_DAYS if days is None else days
        if days < 0:
            raise CommandError("--days must be 0 or more.")
        expired = response_store.expire(actor="manage.py apply_retention")
        self.stdout.write(f"Deleted {expired:,} stored API response(s) past their team's retention period.")
        if days == 0:
            self.stdout.write("Retention is off (LLMHUB_RETENTION_DAYS is 0): prompts and outputs are kept.")
            return
        cleared = retention.apply(days, actor="manage.py apply_retention")
        self.stdout.write(f"Cleared the prompts and outputs of {cleared:,} run(s) older than {days} days.")
