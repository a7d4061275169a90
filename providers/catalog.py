"""Keeping catalogues current: models from a provider's own list, prices from the pricing library."""

from __future__ import annotations

from dataclasses import dataclass, field

from asgiref.sync import async_to_sync

from providers import pricing
from providers.models import Price, Provider, ProviderModel
from providers.registry import registry
from providers.setup import record_price

# A model the catalogue did not know: limits kept small until an admin sets the real ones.
UNKNOWN_MAX_OUTPUT = 4096
UNKNOWN_CONTEXT = 8192


@dataclass
class SyncReport:
    provider: str
    listed: int = 0
    added: list[str] = field(default_factory=list)
    unpriced: list[str] = field(default_factory=list)
    repriced: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"{self.provider}: {self.listed} models listed"]
        if self.added:
            parts.append(f"added {', '.join(self.added)}")
        if self.repriced:
            parts.append(f"new prices for {', '.join(self.repriced)}")
        if self.unpriced:
            parts.append(
                f"price unknown for {', '.join(self.unpriced)} (runs need confirmation until priced)"
            )
        if self.unlisted:
            parts.append(f"no longer listed: {', '.join(self.unlisted)} (kept)")
        return "; ".join(parts) + "."


def limits_for(model_id: str) -> tuple[int, int]:
    """A model's context window and max output when nobody typed them: the built-in catalogue's,
    else the pricing library's context window, else small limits until an admin sets real ones."""
    known = registry.builtin_model(model_id)
    if known is not None:
        return known.context_window, known.max_output
    found = pricing.library_price(model_id)
    context = found.context_window if found and found.context_window else UNKNOWN_CONTEXT
    return context, min(context, UNKNOWN_MAX_OUTPUT)


def sync_models(provider: Provider) -> SyncReport:
    """Add the chat models the provider lists, and date any new library price. Raises ProviderError."""
    adapter = registry.adapter_for(provider)
    kind = registry.kind_of(provider)
    pricing_provider = kind.pricing_provider if kind else None
    listed = [m for m in async_to_sync(adapter.fetch_model_ids)() if adapter.is_chat_model(m)]
    report = SyncReport(provider.id, listed=len(listed))
    known = {row.model_id: row for row in provider.models.all()}
    for model_id in listed:
        row = known.get(model_id)
        found = pricing.library_price(model_id, pricing_provider)
        if row is None:
            context = found.context_window if found and found.context_window else UNKNOWN_CONTEXT
            row = ProviderModel.objects.create(
                id=f"{provider.id}/{model_id}",
                provider=provider,
                model_id=model_id,
                display_name=found.name if found else model_id,
                context_window=context,
                max_output=min(context, UNKNOWN_MAX_OUTPUT),
                capabilities=["chat"],
            )
            report.added.append(model_id)
        if found is None:
            if row.current_price() is None:
                report.unpriced.append(model_id)
            continue
        before = row.prices.filter(source=Price.Source.LIBRARY).order_by("-valid_from").first()
        after = record_price(row, found.input_per_1m, found.output_per_1m, Price.Source.LIBRARY, found)
        if before is not None and before.pk != after.pk:
            report.repriced.append(model_id)
    report.unlisted = sorted(set(known) - set(listed)) if listed else []
    return report
