"""Team API keys and model aliases: what programs use to reach the hub."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
    """A key a program sends as `Authorization: Bearer llmh-...`. Only its SHA-256 is stored (the key
    is 256 random bits, so a fast hash is as safe as a slow one); it is shown once, at creation."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    last_four = models.CharField(max_length=4, editable=False)
    # Empty: every model the team may use. Otherwise "provider/model" refs and alias names.
    allowed_models = models.JSONField(default=list, blank=True)
    allow_unpriced = models.BooleanField(
        default=False, help_text="Let this key run models with no known price (their cost is not recorded)."
    )
    # Empty: no limit of the key's own (its team's limits still apply). gateway/ratelimits.py.
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_minute = models.PositiveBigIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def masked(self) -> str:
        return f"llmh-...{self.last_four}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class ModelAlias(models.Model):
    """A team's name for a model: `fast` → `openai/gpt-4o-mini`. `default` needs no row: it is the
    team's default model."""

    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="model_aliases")
    name = models.SlugField(max_length=64)
    target = models.CharField(max_length=300, help_text='A "provider/model" reference')

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="one_alias_name_per_team")]

    def __str__(self) -> str:
        return f"{self.name} → {self.target}"


class RateWindow(models.Model):
    """What one rate-limited key or team ("key:12", "team:3") used in its current window, which
    opened with its first request and lasts LLMHUB_RATE_LIMIT_WINDOW_SECONDS. One row per scope,
    restarted in place when its window is over (gateway/ratelimits.py, the database backend)."""

    scope = models.CharField(max_length=40, unique=True)
    started_at = models.DateTimeField()
    requests = models.PositiveBigIntegerField(default=0)
    tokens = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.scope}: {self.requests} requests, {self.tokens} tokens since {self.started_at}"


class StoredResponse(models.Model):
    """A Responses API answer kept because its request said `store: true`: what GET
    /v1/responses/{id} returns and what `previous_response_id` continues. It is the team's content
    (never logged), deleted with the team and after the team's retention period."""

    id = models.CharField(max_length=64, primary_key=True)  # "resp_" + the run's uuid
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="stored_responses")
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model = models.CharField(max_length=300)
    # The responses this one continues, oldest first ("resp_..." ids of the same team).
    ancestors = models.JSONField(default=list, blank=True)
    # This request's own input items (instructions are not carried over, as at OpenAI).
    input_items = models.JSONField(default=list)
    response = models.JSONField()  # the Response object as it was answered, output items included
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.id
