"""The models a team may use, in one query: its own providers' and the instance's shared ones.

Pickers, the default model and /v1/models read this instead of walking every provider of the
instance, so a page's query count does not grow with other teams' providers.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q

from providers.catalog_entries import CatalogEntry
from providers.models import ProviderModel
from providers.registry import registry


@dataclass(frozen=True)
class TeamModels:
    entries: list[CatalogEntry]
    default: CatalogEntry | None  # the team's choice while available, else the first provider's default

    def choices(
        self, with_features: bool = False, embeddings: bool = False
    ) -> list[tuple[str, list[tuple[str, str]]]]:
        """Grouped by provider, for a model <select>: [(provider name, [(ref, model name), ...])];
        `with_features` adds what each accepts besides text ("GPT-4o mini · tools, JSON schema").
        Embedding models are left out (they cannot answer a prompt) unless `embeddings` is set."""
        groups: dict[str, list[tuple[str, str]]] = {}
        for entry in self.entries:
            if entry.info.embedding_only and not embeddings:
                continue
            label = entry.info.display_name
            if with_features and entry.info.features:
                label += f" · {entry.info.features}"
            groups.setdefault(entry.provider_name, []).append((entry.ref, label))
        return list(groups.items())

    def refs(self) -> list[str]:
        return [entry.ref for entry in self.entries]


def for_team(team, enabled_only: bool = True) -> TeamModels:
    """Every model of the team's providers (enabled ones only, unless told otherwise), with current
    prices: the models and their providers in one query, their prices in a second."""
    rows = (
        ProviderModel.objects.select_related("provider")
        .prefetch_related("prices")
        .filter(Q(provider__team=team) | Q(provider__team__isnull=True))
        .order_by("provider__display_name", "provider_id", "model_id")
    )
    if enabled_only:
        rows = rows.filter(provider__enabled=True)
    rows = list(rows)
    entries = [registry.entry_for(row) for row in rows]
    chosen = next((e for e in entries if e.ref == team.default_model), None)
    if chosen is None:
        first_default = min(
            (row for row in rows if row.model_id == row.provider.default_model and row.provider.enabled),
            key=lambda row: (row.provider.created_at, row.provider_id),
            default=None,
        )
        chosen = next((e for e in entries if first_default and e.ref == first_default.id), None)
    return TeamModels(entries, chosen)
