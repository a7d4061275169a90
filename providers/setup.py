"""Setting up a provider: saved from a kind and its credentials (checked, encrypted, bound to where
they may be sent), created under a free id, its models seeded with dated prices, its configuration
tested before it is saved and its stored key validated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Team
from providers import credentials as saved_keys
from providers import network, pricing
from providers.base import ProviderConfig
from providers.credentials import CredentialsMissing
from providers.crypto import Secret
from providers.definitions import ProviderDefinition
from providers.kinds import builtin_kinds
from providers.models import Price, Provider, ProviderModel


class ProviderTaken(LookupError):
    """The provider id is another team's (or was taken by a concurrent set-up)."""

    def __init__(self, provider_id: str) -> None:
        super().__init__(f"The provider id {provider_id!r} is taken.")


class ProviderSetup:
    """The set-up part of a ProviderRegistry (providers/registry.py): it finds kinds, adapter classes,
    credential fields and stored providers through the registry."""

    def create(
        self, kind: str, credentials: Mapping[str, str], *, team: Team | None, **fields: Any
    ) -> Provider:
        """A new provider of this kind under the first free id: "openai", then "openai-2", ... An id
        is taken by inserting its row, so two teams connecting the same kind at once get one each
        (the second insert fails and moves on to the next id); never one row with both keys."""
        taken = set(Provider.objects.filter(id__startswith=kind).values_list("id", flat=True))
        for candidate in [kind, *(f"{kind}-{n}" for n in range(2, 1000))]:
            if candidate in taken:
                continue
            try:
                return self.save(kind, credentials, provider_id=candidate, team=team, new=True, **fields)
            except ProviderTaken:
                continue
        raise ProviderTaken(kind)

    @transaction.atomic
    def save(
        self,
        kind: str,
        credentials: Mapping[str, str],
        *,
        provider_id: str = "",
        display_name: str = "",
        endpoint: str = "",
        enabled: bool | None = True,
        team: Team | None = None,
        private_network: bool = False,
        set_by: Any = None,
        new: bool = False,
    ) -> Provider:
        """Create or update a provider from a kind, encrypting its credentials; seeds its models.

        Credentials left empty on update keep their stored value (a key is never sent back to a
        form), but only while the endpoint and headers stay those the key was saved for. With a
        team, only that team's provider is updated; `new` only creates (ProviderTaken if the id
        exists). A new endpoint is checked against the network policy (network.AddressRefused):
        `private_network` says whether whoever sets it may use the hub's own network.
        """
        definition = self.kind(kind)
        adapter_class = self.adapter_class(definition.dialect)
        pid = provider_id or definition.id
        provider = None if new else Provider.objects.filter(pk=pid).first()
        if provider is not None and team is not None and provider.team_id != team.pk:
            raise ProviderTaken(pid)
        target = endpoint.rstrip("/") or (provider.endpoint if provider else "") or definition.endpoint
        moved = provider is None or target != provider.endpoint
        if moved:
            network.check_endpoint(target, private_network)
        merged = self.merge_credentials(provider, definition, credentials, target)
        self._check_settings(definition, credentials, merged)
        provider = provider or Provider(id=pid, team=team)
        if moved:
            provider.private_network, provider.endpoint_set_by = private_network, set_by
        provider.kind = definition.id
        provider.dialect = definition.dialect
        provider.display_name = display_name or provider.display_name or definition.name
        provider.endpoint = target
        provider.default_model = provider.default_model or definition.default_model
        provider.enabled = provider.enabled if enabled is None else enabled
        try:
            extra_models = adapter_class.catalogue(merged)
        except ValueError as error:
            raise CredentialsMissing(str(error)) from None
        provider.set_credentials(merged, saved_keys.binding(target, definition))
        if new:
            try:
                with transaction.atomic():
                    provider.save(force_insert=True)
            except IntegrityError:
                raise ProviderTaken(pid) from None
        else:
            provider.save()
        self.seed_models(provider, definition, extra_models)
        return provider

    def _check_settings(
        self, definition: ProviderDefinition, given: Mapping[str, str], merged: Mapping[str, str]
    ) -> None:
        """CredentialsMissing naming a required setting left empty, or one the kind does not take."""
        missing = [
            f.label for f in self.credential_fields(definition) if f.required and not merged.get(f.name)
        ]
        if missing:
            raise CredentialsMissing(f"{definition.name} needs: {', '.join(missing)}.")
        known = {f.name for f in self.adapter_class(definition.dialect).credential_fields}
        unknown = sorted(set(given) - known)
        if unknown:
            raise CredentialsMissing(
                f"{definition.name} has no setting {unknown[0]!r}; it takes: {', '.join(sorted(known))}."
            )

    def seed_models(self, provider: Provider, definition: ProviderDefinition, extra: Iterable = ()) -> None:
        """Create the definition's models for a provider, each with a dated price when one is known.
        A model priced as another takes that model's limits from the built-in catalogue."""
        known = {m.info.id: m.info for kind in builtin_kinds() for m in kind.models}
        for model in [*definition.models, *extra]:
            info = model.info
            if model.prices_as in known:
                underlying = known[model.prices_as]
                info = dataclasses.replace(underlying, id=info.id, display_name=info.display_name)
            row, _ = ProviderModel.objects.update_or_create(
                id=f"{provider.id}/{info.id}",
                defaults={
                    "provider": provider,
                    "model_id": info.id,
                    "display_name": info.display_name,
                    "context_window": info.context_window,
                    "max_output": info.max_output,
                    "supports_streaming": info.supports_streaming,
                    "capabilities": sorted(info.capabilities),
                    "reasoning": info.reasoning,
                },
            )
            if model.price_given:
                record_price(row, info.input_per_1m, info.output_per_1m, Price.Source.CONFIG)
            elif found := pricing.library_price(model.prices_as or info.id, definition.pricing_provider):
                record_price(row, found.input_per_1m, found.output_per_1m, Price.Source.LIBRARY, found)
            elif info.priced:  # priced as a built-in model whose catalogue writes its price (embeddings)
                record_price(row, info.input_per_1m, info.output_per_1m, Price.Source.CONFIG)

    def merge_credentials(
        self, provider: Provider | None, kind: ProviderDefinition, typed: Mapping[str, str], endpoint: str
    ) -> dict[str, str]:
        """What a save or a connection test may use (see credentials.merge)."""
        saved_kind = self.kind_of(provider) if provider else None
        return saved_keys.merge(provider, saved_kind, kind, typed, endpoint, self._secret_names(kind.dialect))

    def config_from(
        self,
        kind: ProviderDefinition,
        credentials: Mapping[str, str],
        endpoint: str = "",
        private_network: bool = False,
    ) -> ProviderConfig:
        """A configuration that is not saved yet: what "Test connection" checks."""
        adapter_class = self.adapter_class(kind.dialect)
        secret_names = {f.name for f in adapter_class.credential_fields if f.secret}
        return ProviderConfig(
            provider_id=kind.id,
            display_name=kind.name,
            endpoint=endpoint.rstrip("/") or kind.endpoint,
            private_network=private_network,
            credentials={k: Secret(v) if k in secret_names else v for k, v in credentials.items() if v},
            headers=dict(kind.headers),
            auth_header=kind.auth_header,
            auth_scheme=kind.auth_scheme,
            validation_timeout=settings.LLMHUB_VALIDATION_TIMEOUT,
        )

    async def validate_config(
        self,
        kind: ProviderDefinition,
        credentials: Mapping[str, str],
        endpoint: str = "",
        private_network: bool = False,
    ) -> None:
        """Check credentials before they are saved; raises a ProviderError. The caller passes only
        what a form holds, or stored values merge_credentials allowed for this same endpoint."""
        config = self.config_from(kind, credentials, endpoint, private_network)
        await self.adapter_class(kind.dialect)(config).validate_credentials(config)

    async def validate(self, provider_id: str) -> None:
        """Check the stored credentials against the provider; records last_validated_at on success."""
        adapter = await self.aget(provider_id)
        await adapter.validate_credentials(adapter.config)
        await Provider.objects.filter(pk=provider_id).aupdate(last_validated_at=timezone.now())


def record_price(
    model: ProviderModel,
    input_per_1m: Decimal,
    output_per_1m: Decimal,
    source: str,
    cache: pricing.LibraryPrice | None = None,
) -> Price:
    """Add a dated price for a model, or mark the unchanged current one as checked now. `cache`
    gives the prices of cached prompt tokens (the library's), when they differ from input."""
    now = timezone.now()
    cache_read = cache.cache_read_per_1m if cache else None
    cache_write = cache.cache_write_per_1m if cache else None
    latest = model.prices.filter(source=source).order_by("-valid_from", "-pk").first()
    if latest and latest.same_as(input_per_1m, output_per_1m, cache_read, cache_write):
        latest.checked_at = now
        latest.save(update_fields=["checked_at"])
        return latest
    return Price.objects.create(
        model=model,
        model_ref=model.id,
        input_per_1m=input_per_1m,
        output_per_1m=output_per_1m,
        cache_read_per_1m=cache_read,
        cache_write_per_1m=cache_write,
        source=source,
        valid_from=now,
        checked_at=now,
    )
