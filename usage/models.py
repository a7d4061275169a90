"""What was used and what it cost."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
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
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.SET_NULL)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    api_key = models.ForeignKey("gateway.ApiKey", null=True, blank=True, on_delete=models.SET_NULL)
    # The x-request-id of the request that started the run (a client's own, or one the hub made).
    request_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        # The CSV export walks each team's time range in order: streamed from the index, never sorted.
        indexes = [models.Index(fields=["team", "created_at"], name="usage_team_time")]

    def __str__(self) -> str:
        return f"{self.provider_id}/{self.model} run {self.run_id}"


class Run(models.Model):
    """One generation a person started, from an automation or the playground."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to start"
        STREAMING = "streaming", "Streaming"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    # What the last stream said, for callers that relay it (not stored): the provider's finish
    # reason, the provider error that ended a failed run, or the budget refusal that stopped it.
    finish_reason = ""
    last_error = None
    refusal = None
    first_token_at = None  # when its first text arrived, for the time-to-first-token metric

    uuid = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="runs")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="runs"
    )
    automation = models.ForeignKey(
        "automations.Automation", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    # Started by a program through the API with this key (user is then empty).
    api_key = models.ForeignKey(
        "gateway.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    # The x-request-id of the request that created it: finds a run from a client's or a log's id.
    request_id = models.CharField(max_length=128, blank=True, db_index=True)
    model_requested = models.CharField(max_length=300)
    model_used = models.CharField(max_length=300, blank=True)
    messages = models.JSONField(default=list)
    max_tokens = models.PositiveIntegerField()
    temperature = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    output = models.TextField(blank=True)
    # The price before the run: input counted, output at the max-tokens ceiling.
    estimated_input_tokens = models.PositiveIntegerField(default=0)
    estimated_cost_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    max_cost_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    error_message = models.TextField(blank=True)
    warning = models.CharField(max_length=300, blank=True, help_text="Shown before the run starts")
    error_action = models.CharField(
        max_length=20, blank=True, help_text="What the user can do about the error"
    )
    attempts = models.JSONField(default=list, blank=True, help_text="Each model tried and why it was left")
    # Held against budgets from the start of a run until it settles; a crashed run's hold expires.
    reserved_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    reservation_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Every reservation sums what the team's running runs hold: a handful among all the
            # team's runs (without it SQLite walks every run of the team by the team_id index).
            models.Index(
                fields=["team", "reservation_expires_at"],
                condition=models.Q(reserved_usd__isnull=False),
                name="run_team_active_reservation",
            )
        ]

    def __str__(self) -> str:
        return f"Run {self.uuid} ({self.status})"

    @property
    def provider_id(self) -> str:
        return self.model_requested.partition("/")[0]

    @property
    def model_id(self) -> str:
        return self.model_requested.partition("/")[2]

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.COMPLETED, self.Status.CANCELLED, self.Status.FAILED)


class Budget(models.Model):
    """Limits for a scope: a provider (any team), a team (any provider), or a team on one provider.
    Every budget whose scope matches a run applies to it."""

    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    provider = models.ForeignKey(
        "providers.Provider", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets"
    )
    # A budget of one API key (its team's): applies to that key's requests only.
    api_key = models.OneToOneField(
        "gateway.ApiKey", null=True, blank=True, on_delete=models.CASCADE, related_name="budget"
    )
    daily_limit_usd = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    monthly_limit_usd = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    per_run_soft_cap_tokens = models.PositiveIntegerField(null=True, blank=True)
    per_run_hard_cap_tokens = models.PositiveIntegerField(null=True, blank=True)
    alert_threshold = models.DecimalField(max_digits=3, decimal_places=2, default=Decimal("0.80"))

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(team__isnull=False) | models.Q(provider__isnull=False),
                name="budget_has_a_scope",
            ),
            models.UniqueConstraint(
                fields=["team", "provider"], condition=models.Q(api_key=None), name="one_budget_per_scope"
            ),
        ]

    def __str__(self) -> str:
        if self.api_key_id:
            return f"API key {self.api_key}"
        if self.team_id and self.provider_id:
            return f"{self.team} on {self.provider}"
        return str(self.team or self.provider)


class DailySpend(models.Model):
    """Usage rolled up per day (in the configured time zone), team, user, provider and model.

    Updated in the same transaction as each usage row, so budgets and charts read a few hundred
    rows a month instead of every usage row."""

    day = models.DateField()
    team = models.ForeignKey("accounts.Team", null=True, on_delete=models.SET_NULL)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    api_key = models.ForeignKey("gateway.ApiKey", null=True, on_delete=models.SET_NULL)
    provider_id = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    runs = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, default=Decimal("0"))

    class Meta:
        constraints = [
            # Rows without a team or user (command-line usage) may repeat a key: sums stay right.
            models.UniqueConstraint(
                fields=["day", "team", "user", "api_key", "provider_id", "model"],
                name="one_rollup_per_day_and_key",
            )
        ]
        # Covering: the spend page's grouped query reads this index alone, never the table.
        indexes = [
            models.Index(
                fields=[
                    "team",
                    "day",
                    "provider_id",
                    "model",
                    "cost_usd",
                    "runs",
                    "input_tokens",
                    "output_tokens",
                ],
                name="dailyspend_covering",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.provider_id}/{self.model}: {self.cost_usd}"


class BudgetAlert(models.Model):
    """A budget crossed its alert threshold in a period: raised once per budget and period."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period = models.CharField(max_length=8)  # "day" or "month"
    period_start = models.DateField()
    spent_usd = models.DecimalField(max_digits=24, decimal_places=12)
    limit_usd = models.DecimalField(max_digits=14, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period", "period_start"], name="one_alert_per_budget_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.budget} {self.period} of {self.period_start}"


class FallbackPolicy(models.Model):
    """What a run does when its model fails: retries, then other models in order.

    One per team; an automation may carry its own, which replaces the team's."""

    team = models.OneToOneField(
        "accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="fallback_policy"
    )
    automation = models.OneToOneField(
        "automations.Automation",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="fallback_policy",
    )
    enabled = models.BooleanField(default=True)
    order = models.JSONField(default=list, blank=True, help_text='["provider/model", ...] tried in order')
    retry_count = models.PositiveSmallIntegerField(default=3)
    ask_before_switching = models.BooleanField(default=False)
    max_total_wait_seconds = models.PositiveIntegerField(default=120)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(team__isnull=False) | models.Q(automation__isnull=False),
                name="fallback_policy_has_an_owner",
            )
        ]

    def __str__(self) -> str:
        return f"Fallback for {self.automation or self.team}"
