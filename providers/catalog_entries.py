"""The models of configured providers as the pickers, the command line and the run path see them:
catalogue entries with their provider and current price. The run path's lookups are answered from
the process's snapshot of the configuration (providers/configuration.py), rebuilt when a price dated
in the future comes into force.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from providers import configuration, pricing
from providers.base import ModelInfo, TaskType, TokenCount
from providers.models import Provider, ProviderModel

# What recommend_model assumes a run uses when it compares a model's cost with a budget.
TYPICAL_RUN = TokenCount(input=1000, output=1000)


@dataclass(frozen=True)
class CatalogEntry:
    """A model as the pickers and the command line show it: with its provider and current price."""

    ref: str  # "openai/gpt-4o"
    provider_id: str
    provider_name: str
    info: ModelInfo
    is_default: bool


class CatalogEntries:
    """The models part of a ProviderRegistry (providers/registry.py)."""

    def list_models(self, provider_id: str | None = None, enabled_only: bool = True) -> list[CatalogEntry]:
        providers = Provider.objects.all()
        if provider_id:
            providers = providers.filter(pk=provider_id)
        if enabled_only:
            providers = providers.filter(enabled=True)
        # (a provider's own related manager hands each row its provider: no query per row)
        return [
            self.entry_for(row)
            for provider in providers
            for row in provider.models.prefetch_related("prices")
        ]

    def model_info(self, ref: str) -> CatalogEntry | None:
        """The catalogue entry for "provider/model", or None."""
        row = self.model_row(ref)
        return None if row is None else self.entry_for(row)

    @staticmethod
    def model_row(ref: str) -> ProviderModel | None:
        """The model "provider/model" with its provider and prices: from the process's snapshot of
        the configuration while it is current (providers/configuration.py), else in two queries.
        Shared by every thread: read it, never change it."""
        provider_id, _, model = ref.partition("/")
        return configuration.cached(
            ("model", ref),
            lambda: (
                ProviderModel.objects.select_related("provider")
                .prefetch_related("prices")
                .filter(provider_id=provider_id, model_id=model)
                .first()
            ),
        )

    def run_entry(self, row: ProviderModel) -> CatalogEntry:
        """entry_for(row) once per configuration version (and price coming into force): what the
        run path asks of a model on every request. Shared by every thread: read it only."""
        return configuration.cached(
            ("run entry", row.id), lambda: Dated(self.entry_for(row), next_price(row)), Dated.current
        ).value

    def entry_for(self, row: ProviderModel) -> CatalogEntry:
        provider = row.provider
        return CatalogEntry(
            ref=f"{provider.id}/{row.model_id}",
            provider_id=provider.id,
            provider_name=provider.display_name,
            info=row_info(row),
            is_default=row.model_id == provider.default_model,
        )

    def recommend_model(
        self, budget_per_run: Decimal, task_type: TaskType | str, typical: TokenCount = TYPICAL_RUN
    ) -> str | None:
        """The cheapest enabled, priced model able to do the task whose typical run fits the budget.

        Unpriced models are never recommended: their cost cannot be shown to fit any budget.
        """
        task = TaskType(task_type)
        candidates = []
        for entry in self.list_models(enabled_only=True):
            if not entry.info.priced or not entry.info.can_do(task):
                continue
            run_cost = pricing.ModelPricing.of(entry.info).cost(typical.input, typical.output)
            if run_cost <= budget_per_run:
                candidates.append((run_cost, entry.ref))
        return min(candidates)[1] if candidates else None


@dataclass(frozen=True)
class Dated:
    """An answer built from a model's prices, and when the next of them dated later comes into
    force (None: none is), when it must be built again."""

    value: Any
    until: datetime | None

    def current(self) -> bool:
        return self.until is None or timezone.now() < self.until


def next_price(row: ProviderModel) -> datetime | None:
    """When the first of the model's prices dated later than now comes into force, if any."""
    now = timezone.now()
    return min((p.valid_from for p in row.prices.all() if p.valid_from > now), default=None)


def row_info(row: ProviderModel) -> ModelInfo:
    """A catalogue row as the adapters read it, with its current price."""
    price = row.current_price()
    return ModelInfo(
        id=row.model_id,
        display_name=row.display_name,
        context_window=row.context_window,
        max_output=row.max_output,
        supports_streaming=row.supports_streaming,
        input_per_1m=price.input_per_1m if price else None,
        output_per_1m=price.output_per_1m if price else None,
        cache_read_per_1m=price.cache_read_per_1m if price else None,
        cache_write_per_1m=price.cache_write_per_1m if price else None,
        capabilities=frozenset(row.capabilities),
        reasoning=row.reasoning,
    )
