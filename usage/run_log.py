"""The requests log: every run started in the browser and every API request, filtered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time

from django.db.models import Q, QuerySet
from django.utils import timezone

from usage.models import Run


@dataclass(frozen=True)
class Query:
    person: int | None = None
    api_key: int | None = None
    provider: str = ""
    model: str = ""  # "provider/model", requested or used
    status: str = ""
    start: date | None = None
    end: date | None = None  # exclusive

    def apply(self, runs: QuerySet[Run]) -> QuerySet[Run]:
        if self.person:
            runs = runs.filter(user_id=self.person)
        if self.api_key:
            runs = runs.filter(api_key_id=self.api_key)
        if self.provider:
            prefix = f"{self.provider}/"
            runs = runs.filter(Q(model_used__startswith=prefix) | Q(model_requested__startswith=prefix))
        if self.model:
            runs = runs.filter(Q(model_used=self.model) | Q(model_requested=self.model))
        if self.status:
            runs = runs.filter(status=self.status)
        zone = timezone.get_current_timezone()
        if self.start:
            runs = runs.filter(created_at__gte=datetime.combine(self.start, time.min, zone))
        if self.end:
            runs = runs.filter(created_at__lt=datetime.combine(self.end, time.min, zone))
        return runs.select_related("team", "user", "api_key", "automation").order_by("-created_at", "-pk")
