"""Configured providers, the models they offer, and dated prices."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db import models
from django.utils import timezone

from llmhub import conf
from providers import crypto


class Provider(models.Model):
    """A provider this hub talks to: "openai", "anthropic", or a custom one such as "office-vllm"."""

    id = models.SlugField(primary_key=True, max_length=64)
    display_name = models.CharField(max_length=100)
    # The team that set it up and manages it; no team means shared by the whole instance (staff manage it).
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="providers"
    )
    kind = models.CharField(max_length=64, help_text="The definition it was set up from.")
    dialect = models.CharField(max_length=32, help_text="The wire format: openai, anthropic, ...")
    enabled = models.BooleanField(default=True)
    credentials_encrypted = models.TextField(blank=True, editable=False)
    endpoint = models.URLField(max_length=500, blank=True)
    # Whether the endpoint may be on the hub's own network (loopback, private, link-local): only when
    # a site admin, the command line or the providers file set it (providers/network.py).
    private_network = models.BooleanField(default=False)
    endpoint_set_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    default_model = models.CharField(max_length=200, blank=True)
    last_validated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["display_name"]

    def __str__(self) -> str:
        return self.display_name

    def credentials(self) -> dict[str, str]:
        return crypto.decrypt(self.credentials_encrypted)

    def bound_credentials(self) -> tuple[dict[str, str], dict | None]:
        """The credentials and the endpoint and headers they were saved for (None: saved before
        keys were bound). Raises crypto.CredentialsUnreadable."""
        return crypto.decrypt_bound(self.credentials_encrypted)

    def set_credentials(self, credentials: dict[str, str], bound_to: dict | None = None) -> None:
        self.credentials_encrypted = crypto.encrypt({k: v for k, v in credentials.items() if v}, bound_to)

    def masked_key(self) -> str:
        """The key's mask; a key no configured encryption key can read says so instead of failing."""
        try:
            return crypto.mask(self.credentials().get("api_key", ""))
        except crypto.CredentialsUnreadable:
            return UNREADABLE_KEY


UNREADABLE_KEY = "unreadable: re-enter the key"


class ProviderModel(models.Model):
    """A model one provider offers, as "provider/model" (e.g. "openai/gpt-4o")."""

    id = models.CharField(primary_key=True, max_length=300)
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    model_id = models.CharField(max_length=200)
    display_name = models.CharField(max_length=200)
    context_window = models.PositiveIntegerField()
    max_output = models.PositiveIntegerField()
    supports_streaming = models.BooleanField(default=True)
    capabilities = models.JSONField(default=list, blank=True)
    reasoning = models.BooleanField(default=False)

    class Meta:
        ordering = ["provider_id", "model_id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model_id"], name="unique_model_per_provider")
        ]

    def __str__(self) -> str:
        return self.id

    def current_price(self, at: datetime | None = None) -> Price | None:
        """The price in force: an admin's override first, then a config file's, then the library's."""
        return price_in_force(self.prices.all(), at)


class Price(models.Model):
    """A model's price from a moment on. Usage rows point at the price they were charged with,
    so a later change never rewrites history; rows are added, never edited."""

    class Source(models.TextChoices):
        LIBRARY = "library", "Pricing library"
        CONFIG = "config", "Config file"
        ADMIN = "admin", "Admin"

    PRECEDENCE = {Source.LIBRARY: 0, Source.CONFIG: 1, Source.ADMIN: 2}

    model = models.ForeignKey(ProviderModel, null=True, on_delete=models.SET_NULL, related_name="prices")
    # Kept when the model row goes with its provider, so history still says what was charged.
    model_ref = models.CharField(max_length=300)
    input_per_1m = models.DecimalField(max_digits=14, decimal_places=6)
    output_per_1m = models.DecimalField(max_digits=14, decimal_places=6)
    # Prompt tokens read from / written to the provider's cache; empty: charged as input.
    cache_read_per_1m = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    cache_write_per_1m = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    valid_from = models.DateTimeField(default=timezone.now)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model_ref", "-valid_from"]

    def __str__(self) -> str:
        return f"{self.model_ref}: ${self.input_per_1m} in / ${self.output_per_1m} out per 1M"

    def same_as(
        self,
        input_per_1m: Decimal,
        output_per_1m: Decimal,
        cache_read_per_1m: Decimal | None = None,
        cache_write_per_1m: Decimal | None = None,
    ) -> bool:
        return (self.input_per_1m, self.output_per_1m, self.cache_read_per_1m, self.cache_write_per_1m) == (
            input_per_1m,
            output_per_1m,
            cache_read_per_1m,
            cache_write_per_1m,
        )


class CustomKind(models.Model):
    """A kind of provider an admin defined in the browser ("+ Add provider → Custom provider").

    `definition` has exactly the shape of one `[[providers]]` table in a providers file, and is
    checked by the same parser, so a kind from the UI and one from a file behave alike.
    """

    id = models.SlugField(primary_key=True, max_length=64)
    # The team that defined it sees it among its provider cards; no team: every team (instance staff).
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="custom_kinds"
    )
    definition = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.definition.get("name") or self.id


class CircuitBreaker(models.Model):
    """A provider's recent failures, shared by every server process (providers/breaker.py): after
    too many in a row it is skipped until `open_until`, then one probe request decides."""

    provider = models.OneToOneField(
        Provider, primary_key=True, on_delete=models.CASCADE, related_name="breaker"
    )
    failures = models.PositiveIntegerField(default=0, help_text="Failed requests in a row")
    open_until = models.DateTimeField(null=True, blank=True, help_text="Skipped until then")
    probe_until = models.DateTimeField(null=True, blank=True, help_text="A probe request is out until then")
    last_error = models.CharField(max_length=300, blank=True)

    def __str__(self) -> str:
        return f"{self.provider_id}: {self.failures} failures"

    @property
    def skipping(self) -> bool:
        """Open: runs skip the provider now (past `open_until`, a probe may go through)."""
        return self.open_until is not None and self.open_until > conf.now()


def price_in_force(prices: Iterable[Price], at: datetime | None = None) -> Price | None:
    """Of a model's prices, the one in force at `at` (now): an admin's override first, then a
    config file's, then the library's; the latest of a source wins."""
    at = at or conf.now()
    in_force = [p for p in prices if p.valid_from <= at]
    if not in_force:
        return None
    return max(in_force, key=lambda p: (Price.PRECEDENCE[p.source], p.valid_from, p.pk))


class ConfigurationVersion(models.Model):
    """One row: a number that changes with every change to the configuration the run engine reads
    (providers, models, prices, budgets, fallback policies), so each server process knows, with one
    small query, whether its snapshot of it (usage/configuration.py) is still current."""

    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"configuration version {self.version}"
