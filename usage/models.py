"""What was used and what it cost."""

from __future__ import annotations

from django.db import models

from providers.models import Price


class UsageRecord(models.Model):
    """One generation's token counts and cost, charged at the price it points to.

    Provider and model are kept as text: a provider can be deleted, its history stays.
    A null cost means the model was unpriced when it ran (never silently $0).
    """

    class Source(models.TextChoices):
        CLI = "cli", "Command line"
        RUN = "run", "Run"
        API = "api", "API"

    provider_id = models.CharField(max_length=64, db_index=True)
    model = models.CharField(max_length=200)
    run_id = models.CharField(max_length=64, db_index=True)
    input_tokens = models.PositiveBigIntegerField()
    output_tokens = models.PositiveBigIntegerField()
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    price = models.ForeignKey(Price, null=True, blank=True, on_delete=models.PROTECT)
    source = models.CharField(max_length=8, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.provider_id}/{self.model} run {self.run_id}"
