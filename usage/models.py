"""What was used and what it cost."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Value
from django.db.models.functions import Coalesce

from providers.chat import Message
from providers.models import Price


class CallKind(models.TextChoices):
    """What a run asked the provider for: a generation (chat, completions, messages, responses), or
    embeddings (POST /v1/embeddings: input tokens only, no text)."""

    GENERATION = "generation", "Generation"
    EMBEDDINGS = "embeddings", "Embeddings"


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
    # Of the input: read from / written to the provider's prompt cache (each at its own price);
    # of the output: reasoning the answer does not show (priced as output).
    cache_read_tokens = models.PositiveBigIntegerField(default=0)
    cache_write_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    price = models.ForeignKey(Price, null=True, blank=True, on_delete=models.PROTECT)
    source = models.CharField(max_length=8, choices=Source.choices)
    kind = models.CharField(max_length=12, choices=CallKind.choices, default=CallKind.GENERATION)
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
        # Its server stopped (a restart, a crash) while it ran: ended by the drain or by recovery.
        INTERRUPTED = "interrupted", "Interrupted"

    # What the last stream said, for callers that relay it (not stored): the provider's finish
    # reason, and the budget refusal that stopped it.
    finish_reason = ""
    refusal = None

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
    kind = models.CharField(max_length=12, choices=CallKind.choices, default=CallKind.GENERATION)
    messages = models.JSONField(default=list)
    max_tokens = models.PositiveIntegerField()
    temperature = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    # Every other option of the request (tools, response_format, stop, ...), as
    # GenerationRequest.options_json() wrote it: a new option needs no new column.
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    output = models.TextField(blank=True)
    # What the answer held besides its text: tool calls, logprobs, the other choices when n > 1.
    answer = models.JSONField(default=dict, blank=True)
    # The price before the run: input counted, output at the max-tokens ceiling.
    estimated_input_tokens = models.PositiveIntegerField(default=0)
    estimated_cost_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    max_cost_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    # Of those: read from / written to the prompt cache, and reasoning (as UsageRecord has them).
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cache_write_tokens = models.PositiveIntegerField(default=0)
    reasoning_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    error_message = models.TextField(blank=True)
    warning = models.CharField(max_length=300, blank=True, help_text="Shown before the run starts")
    error_action = models.CharField(
        max_length=20, blank=True, help_text="What the user can do about the error"
    )
    attempts = models.JSONField(default=list, blank=True, help_text="Each model tried and why it was left")
    # The provider reported more usage than the run reserved; it was charged at the cap.
    usage_warning = models.TextField(blank=True)
    # Held against budgets from the start of a run until it settles. The expiry is the run's lease,
    # renewed while it runs (set even when nothing is held); a dead run's lease runs out.
    reserved_usd = models.DecimalField(max_digits=24, decimal_places=12, null=True, blank=True)
    reservation_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # When the first text arrived: the requests log's time to first token is this minus started_at.
    first_token_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The requests log: a team's runs, newest first, a page at a time.
            models.Index(fields=["team", "-created_at"], name="run_team_newest"),
            # Every reservation sums what the team's running runs hold: a handful among all the
            # team's runs (without it SQLite walks every run of the team by the team_id index).
            models.Index(
                fields=["team", "reservation_expires_at"],
                condition=models.Q(reserved_usd__isnull=False),
                name="run_team_active_reservation",
            ),
            # The admin banner for usage reported above the cap reads a team's few flagged runs.
            models.Index(
                fields=["team", "finished_at"],
                condition=~models.Q(usage_warning=""),
                name="run_team_usage_warning",
            ),
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
        return self.status not in (self.Status.PENDING, self.Status.STREAMING)

    def prompt_shown(self) -> list[dict[str, str]]:
        """The prompt as the run page shows it: each message's text, and a note of what else it held."""
        shown = []
        for message in map(Message.from_json, self.messages):
            notes = [f"{len(message.images)} image(s)"] if message.images else []
            notes += [f"calls {call.name}({call.arguments})" for call in message.tool_calls]
            notes += [f"result of {message.tool_call_id}"] if message.tool_call_id else []
            shown.append({"role": message.role, "text": message.text, "note": "; ".join(notes)})
        return shown

    def tool_calls_shown(self) -> list[dict[str, str]]:
        """The tool calls the answer asked for, their arguments pretty-printed."""
        return [
            {**call, "arguments": _pretty(call["arguments"])}
            for call in (self.answer or {}).get("tool_calls", [])
        ]

    def structured_output(self) -> str:
        """The output pretty-printed, when JSON was asked for; "" otherwise."""
        return _pretty(self.output) if (self.options or {}).get("response_format") and self.output else ""

    @property
    def time_to_first_token(self) -> timedelta | None:
        if self.started_at is None or self.first_token_at is None:
            return None
        return self.first_token_at - self.started_at

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


def _pretty(text: str) -> str:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except json.JSONDecodeError:
        return text  # not JSON after all (a cut-off answer): shown as it came


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
    # Sub-cent limits are real for cheap models (a run can cost $0.0000150): six decimals.
    daily_limit_usd = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    monthly_limit_usd = models.DecimalField(
        max_digits=18, decimal_places=6, null=True, blank=True, validators=[MinValueValidator(0)]
    )
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


# The spend page's grouped query (by team and day, then kind, provider and model, summing the totals)
# reads an index of these columns alone, never the table: DailySpend's and TeamDailySpend's.
COVERING_SPEND_INDEX = [
    "team",
    "day",
    "kind",
    "provider_id",
    "model",
    "cost_usd",
    "runs",
    "input_tokens",
    "output_tokens",
]


class SpendTotals(models.Model):
    """What a roll-up row sums: the runs, their tokens and their cost (DailySpend, TeamDailySpend)."""

    runs = models.PositiveIntegerField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=24, decimal_places=12, default=Decimal("0"))

    class Meta:
        abstract = True


class DailySpend(SpendTotals):
    """Usage rolled up per day (in the configured time zone), team, user, API key, provider, model
    and kind of call (generation or embeddings: the spend page's filter).

    Updated in the same transaction as each usage row, so budgets and charts read a few hundred
    rows a month instead of every usage row. TeamDailySpend (below) follows it by triggers."""

    day = models.DateField()
    team = models.ForeignKey("accounts.Team", null=True, on_delete=models.SET_NULL)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    api_key = models.ForeignKey("gateway.ApiKey", null=True, on_delete=models.SET_NULL)
    provider_id = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    kind = models.CharField(max_length=12, choices=CallKind.choices, default=CallKind.GENERATION)

    class Meta:
        constraints = [
            # "No team", "no user" (API usage) and "no API key" are one value each: a plain key
            # counts NULLs as distinct, and concurrent settlements then made duplicate rows that
            # later updates all added to. usage/rollups.py upserts against exactly this index.
            models.UniqueConstraint(
                "day",
                Coalesce("team", Value(0)),
                Coalesce("user", Value(0)),
                Coalesce("api_key", Value(0)),
                "provider_id",
                "model",
                "kind",
                name="dailyspend_one_call_kind_per_key",
            )
        ]
        # Covering: the spend page's grouped query reads this index alone, never the table.
        indexes = [
            models.Index(
                fields=COVERING_SPEND_INDEX,
                name="dailyspend_covering_by_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.provider_id}/{self.model}: {self.cost_usd}"


class TeamDailySpend(SpendTotals):
    """DailySpend summed without user and API key: per day, team, provider, model and kind of call.

    The spend page reads it whenever no API key is chosen, and team and provider budgets sum it: a
    year is some ten thousand of these rows where DailySpend has one per user and key as well
    (190,000 at a million usage rows: 0.4 s for the year view; this table, 10 ms).

    Database triggers on DailySpend write it (usage/team_rollups.py, installed by migration 0015),
    never Python: each insert, update and delete of a DailySpend row changes its row here in the
    same statement, so it is exact for every writer (the settlement's upsert, folds on deletion,
    rebuilds, tests and tools writing DailySpend directly) and costs the settlement no statement.
    An explicit second upsert in usage/rollups.py was the alternative: one more statement per
    settlement, and every other writer of DailySpend to keep in step by hand."""

    day = models.DateField()
    # Only the triggers write here: when a team goes, its DailySpend rows are folded into the rows
    # without a team (usage/rollups.py) and the triggers move these along with them.
    team = models.ForeignKey("accounts.Team", null=True, on_delete=models.DO_NOTHING, related_name="+")
    provider_id = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    kind = models.CharField(max_length=12, choices=CallKind.choices, default=CallKind.GENERATION)

    class Meta:
        constraints = [
            # The triggers' upsert target ("no team" is one value, as in DailySpend).
            models.UniqueConstraint(
                "day",
                Coalesce("team", Value(0)),
                "provider_id",
                "model",
                "kind",
                name="teamdailyspend_one_row_per_key",
            )
        ]
        # Covering, as DailySpend's: the spend page's grouped query reads this index alone.
        indexes = [
            models.Index(
                fields=COVERING_SPEND_INDEX,
                name="teamdailyspend_covering",
            )
        ]

    def __str__(self) -> str:
        return f"{self.day} team {self.team_id} {self.provider_id}/{self.model}: {self.cost_usd}"


class BudgetAlert(models.Model):
    """A budget crossed its alert threshold in a period: raised once per budget and period."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period = models.CharField(max_length=8)  # "day" or "month"
    period_start = models.DateField()
    spent_usd = models.DecimalField(max_digits=24, decimal_places=12)
    limit_usd = models.DecimalField(max_digits=18, decimal_places=6)
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


class BudgetAlertDismissal(models.Model):
    """A person closed a budget's banner: it stays closed until the period (day or month) ends."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="+")
    period = models.CharField(max_length=8)  # "day" or "month"
    period_start = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "budget", "period", "period_start"], name="one_dismissal_per_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} closed {self.budget} {self.period} of {self.period_start}"


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
