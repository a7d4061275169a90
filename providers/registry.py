"""Which providers exist and how to reach them.

Two lookups, as Django's caches do: a provider id ("openai", "office-vllm") names a database row,
and the row's dialect names an adapter class in ADAPTERS. Kinds of provider a user can set up come
from definitions (the built-in file now; user files and the UI later), never from code.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, IntegrityError, models, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts.models import Team
from providers import configuration, network, pricing
from providers import credentials as saved_keys
from providers.base import CredentialField, ModelInfo, ProviderAdapter, ProviderConfig, TaskType, TokenCount
from providers.credentials import CredentialsMissing
from providers.crypto import Secret
from providers.definitions import (
    BUILTIN_FILE,
    DefinitionError,
    ProviderDefinition,
    load_file,
    load_user_files,
    parse_entry,
)
from providers.models import CustomKind, Price, Provider, ProviderModel

log = logging.getLogger(__name__)

ADAPTERS: dict[str, str] = {  # dialect -> adapter class, imported on first use
    "openai": "providers.adapters.openai.OpenAIAdapter",
    "anthropic": "providers.adapters.anthropic.AnthropicAdapter",
    "gemini": "providers.adapters.gemini.GeminiAdapter",
    "ollama": "providers.adapters.ollama.OllamaAdapter",
    "azure": "providers.adapters.azure.AzureOpenAIAdapter",
}

# The `source` of a definition stored from the UI (files have their path, built-ins "builtin").
CUSTOM_SOURCE = "custom provider"

# What recommend_model assumes a run uses when it compares a model's cost with a budget.
TYPICAL_RUN = TokenCount(input=1000, output=1000)


class UnknownProvider(LookupError):
    def __init__(self, provider_id: str) -> None:
        super().__init__(f"No provider {provider_id!r} is configured.")


class UnknownKind(LookupError):
    def __init__(self, kind: str, known: Iterable[str]) -> None:
        super().__init__(f"No provider kind {kind!r}. Known kinds: {', '.join(sorted(known))}.")


class ProviderTaken(LookupError):
    """The provider id is another team's (or was taken by a concurrent set-up)."""

    def __init__(self, provider_id: str) -> None:
        super().__init__(f"The provider id {provider_id!r} is taken.")


@dataclass(frozen=True)
class CatalogEntry:
    """A model as the pickers and the command line show it: with its provider and current price."""

    ref: str  # "openai/gpt-4o"
    provider_id: str
    provider_name: str
    info: ModelInfo
    is_default: bool


class ProviderRegistry:
    """Provider id -> an adapter configured for it, and the operations around configuration."""

    def __init__(self, adapters: Mapping[str, str | type[ProviderAdapter]] = ADAPTERS) -> None:
        self._adapters: dict[str, str | type[ProviderAdapter]] = dict(adapters)
        self._file_kinds: tuple[ProviderDefinition, ...] = ()
        self._files_loaded = False
        self.file_error = ""  # the last providers-file error; the running set stayed as it was

    # ---- adapter kinds and definitions
    def register(self, dialect: str, adapter: str | type[ProviderAdapter]) -> None:
        self._adapters[dialect] = adapter

    def dialects(self) -> list[str]:
        return sorted(self._adapters)

    def adapter_class(self, dialect: str) -> type[ProviderAdapter]:
        adapter = self._adapters[dialect]
        return import_string(adapter) if isinstance(adapter, str) else adapter

    def kinds(self) -> list[ProviderDefinition]:
        """Every kind of provider that can be set up: built-in, from files, then defined in the UI."""
        self._read_files_once()
        builtin = [kind for kind in _builtin_kinds() if kind.dialect in self._adapters]
        fixed = builtin + list(self._file_kinds)
        return fixed + self.custom_kinds(CustomKind.objects.all(), taken={k.id for k in fixed})

    def kinds_for(self, team: Team | None) -> list[ProviderDefinition]:
        """The provider cards a team's admin sees: every fixed kind, and the custom kinds that are
        the team's own or shared with every team."""
        mine = (
            CustomKind.objects.filter(team=None)
            if team is None
            else CustomKind.objects.filter(models.Q(team=None) | models.Q(team=team))
        )
        fixed = [kind for kind in self.kinds() if kind.source != CUSTOM_SOURCE]
        return fixed + self.custom_kinds(mine, taken={k.id for k in fixed})

    def custom_kinds(
        self, rows: Iterable[CustomKind], taken: Collection[str] = ()
    ) -> list[ProviderDefinition]:
        """Definitions stored from the UI. One a file now shadows (same id) or a dialect no longer
        registered is left out with a warning, rather than breaking every page."""
        kinds = []
        for row in rows:
            if row.id in taken:
                log.warning("Custom provider %s is shadowed by a provider of the same id in a file", row.id)
                continue
            try:
                kinds.append(parse_entry(row.definition, CUSTOM_SOURCE, self._adapters))
            except DefinitionError as error:
                log.warning("Custom provider %s is not usable: %s", row.id, error)
        return kinds

    def reload(self) -> str:
        """Re-read LLMHUB_PROVIDERS_FILE and providers.d/*.toml. A malformed file changes nothing:
        the providers already running stay as they were, and the error is returned (and kept in
        `file_error`) naming the file, line and field. Providers whose key comes from an environment
        variable are set up (or updated) from it: at start-up (llmhub/serve.py), by `manage.py
        providers_reload` and by the reload button, never by a lookup (reads never write)."""
        if error := self._read_files():
            return error
        for kind in self._file_kinds:
            secret = os.environ.get(kind.api_key_env, "") if kind.api_key_env else ""
            if secret or (kind.api_key_env == "" and not kind.key_required):
                self._configure_from_file(kind, secret)
        return ""

    def _read_files_once(self) -> None:
        """The files' kinds in memory, read on first use without writing anything."""
        if not self._files_loaded:
            self._read_files()

    def _read_files(self) -> str:
        self._files_loaded = True
        try:
            kinds = load_user_files(
                settings.LLMHUB_PROVIDERS_FILE, self._adapters, {k.id for k in _builtin_kinds()}
            )
        except DefinitionError as error:
            self.file_error = str(error)
            return self.file_error
        self._file_kinds, self.file_error = tuple(kinds), ""
        return ""

    def _configure_from_file(self, kind: ProviderDefinition, secret: str) -> None:
        try:
            # The providers file is the operator's: its endpoints may be on the hub's own network.
            self.save(
                kind.id, {"api_key": secret} if secret else {}, provider_id=kind.id, private_network=True
            )
        except DatabaseError as error:
            # Before the first migration (a fresh install starting up) there is nowhere to save yet.
            log.warning("Providers file: %s not saved: %s", kind.id, error)
        except CredentialsMissing as error:
            # Its other settings (Azure's deployments) are entered on its set-up form instead.
            log.warning("Providers file: %s is not connected at start: %s", kind.id, error)

    def credential_fields(self, kind: ProviderDefinition) -> tuple[CredentialField, ...]:
        """The dialect's fields, with the key made optional where the definition says so."""
        fields = self.adapter_class(kind.dialect).credential_fields
        if kind not in _builtin_kinds():
            # Another service's keys look different (no "sk-..." hint), and it has none of the
            # vendor's own settings (a vLLM server has no OpenAI organization).
            fields = tuple(
                dataclasses.replace(f, placeholder="") if f.secret else f for f in fields if not f.vendor_only
            )
        if kind.key_required:
            return fields
        return tuple(dataclasses.replace(f, required=False) if f.name == "api_key" else f for f in fields)

    def kind(self, kind_id: str) -> ProviderDefinition:
        kinds = {k.id: k for k in self.kinds()}
        if kind_id not in kinds:
            raise UnknownKind(kind_id, kinds)
        return kinds[kind_id]

    # ---- configured providers
    def get(self, provider_id: str, only_model: str | None = None) -> ProviderAdapter:
        """An adapter for a configured provider, with decrypted credentials and current prices.

        `only_model` loads the catalogue of that one model instead of all of them: enough to run a
        generation with it, and what the run path uses (a provider may list hundreds of models)."""
        if only_model is not None and (row := self.model_row(f"{provider_id}/{only_model}")) is not None:
            return self._run_adapter(row, self.adapter_class(row.provider.dialect))
        provider = Provider.objects.filter(pk=provider_id).first()
        if provider is None:
            raise UnknownProvider(provider_id)
        return self.adapter_for(provider)

    async def aget(self, provider_id: str) -> ProviderAdapter:
        return await sync_to_async(self.get)(provider_id)

    def load(self) -> dict[str, ProviderAdapter]:
        """Adapters for every configured provider."""
        return {p.id: self.adapter_for(p) for p in Provider.objects.all()}

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

    def list(self) -> list[Provider]:
        return list(Provider.objects.all())

    def list_enabled(self) -> list[Provider]:
        return list(Provider.objects.filter(enabled=True))

    def adapter_for(
        self, provider: Provider, models: Iterable[ProviderModel] | None = None
    ) -> ProviderAdapter:
        adapter_class = self.adapter_class(provider.dialect)
        config = self.config_for(provider, models=models)
        return adapter_class(config)

    def _run_adapter(self, row: ProviderModel, adapter_class: type[ProviderAdapter]) -> ProviderAdapter:
        """The adapter a run on this model uses, with its configuration built (its credentials
        decrypted and checked against where the provider points, KeyUnusable else) once per
        configuration version: saving a key, disabling, moving or deleting the provider is a change
        of the version. Also keyed by the settings it reads (tests and a reload change them without
        a version) and rebuilt when a price dated in the future comes into force. A key that cannot
        be used is never kept. Adapters keep no state of a request (their HTTP client prepares each
        path's URL and headers once, for every request after), so concurrent runs share one."""
        key = (
            "run adapter",
            row.id,
            adapter_class,
            hash(tuple(settings.LLMHUB_ENCRYPTION_KEYS or ())),
            settings.LLMHUB_REQUEST_TIMEOUT,
            settings.LLMHUB_VALIDATION_TIMEOUT,
        )
        return configuration.cached(
            key,
            lambda: _Dated(adapter_class(self.config_for(row.provider, models=[row])), _next_price(row)),
            _Dated.current,
        ).value

    def config_for(
        self,
        provider: Provider,
        credentials: Mapping[str, str] | None = None,
        models: Iterable[ProviderModel] | None = None,
    ) -> ProviderConfig:
        """`models`: the catalogue rows to include (with their prices); all the provider's by default."""
        adapter_class = self.adapter_class(provider.dialect)
        secret_names = {f.name for f in adapter_class.credential_fields if f.secret}
        kind = self.kind_of(provider)
        plain = self.usable_credentials(provider, kind) if credentials is None else credentials
        return ProviderConfig(
            provider_id=provider.id,
            display_name=provider.display_name,
            endpoint=provider.endpoint or adapter_class.default_endpoint,
            private_network=provider.private_network,
            credentials={k: Secret(v) if k in secret_names else v for k, v in plain.items()},
            headers=dict(kind.headers) if kind else {},
            auth_header=kind.auth_header if kind else "",
            auth_scheme=kind.auth_scheme if kind else "Bearer",
            models=tuple(
                map(self._info, provider.models.prefetch_related("prices") if models is None else models)
            ),
            default_model=provider.default_model,
            validation_timeout=settings.LLMHUB_VALIDATION_TIMEOUT,
            request_timeout=settings.LLMHUB_REQUEST_TIMEOUT,
        )

    def usable_credentials(self, provider: Provider, kind: ProviderDefinition | None) -> dict[str, str]:
        """The stored credentials, when they may be sent where the provider now points (KeyUnusable)."""
        return saved_keys.usable(provider, kind, self._secret_names(provider.dialect))

    def merge_credentials(
        self, provider: Provider | None, kind: ProviderDefinition, typed: Mapping[str, str], endpoint: str
    ) -> dict[str, str]:
        """What a save or a connection test may use (see credentials.merge)."""
        saved_kind = self.kind_of(provider) if provider else None
        return saved_keys.merge(provider, saved_kind, kind, typed, endpoint, self._secret_names(kind.dialect))

    def _secret_names(self, dialect: str) -> set[str]:
        return {f.name for f in self.adapter_class(dialect).credential_fields if f.secret}

    def kind_of(self, provider: Provider) -> ProviderDefinition | None:
        """The kind a provider was set up from: built-in or file kinds from memory, a custom kind
        from its one row."""
        self._read_files_once()
        for kind in (*_builtin_kinds(), *self._file_kinds):
            if kind.id == provider.kind:
                return kind
        rows = CustomKind.objects.filter(pk=provider.kind)
        return next(iter(self.custom_kinds(rows)), None)

    @staticmethod
    def builtin_model(model_id: str) -> ModelInfo | None:
        """A model of the built-in catalogue by its id ("gpt-4o"), whichever provider lists it."""
        return next((m.info for kind in _builtin_kinds() for m in kind.models if m.info.id == model_id), None)

    @staticmethod
    def _info(row: ProviderModel) -> ModelInfo:
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

    # ---- configuration
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
        known = {m.info.id: m.info for kind in _builtin_kinds() for m in kind.models}
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

    def enable(self, provider_id: str) -> None:
        self._set_enabled(provider_id, True)

    def disable(self, provider_id: str) -> None:
        self._set_enabled(provider_id, False)

    @transaction.atomic
    def _set_enabled(self, provider_id: str, enabled: bool) -> None:
        if not Provider.objects.filter(pk=provider_id).update(enabled=enabled, updated_at=timezone.now()):
            raise UnknownProvider(provider_id)
        configuration.changed()  # an update() sends no post_save

    # ---- models
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
            ("run entry", row.id), lambda: _Dated(self.entry_for(row), _next_price(row)), _Dated.current
        ).value

    def entry_for(self, row: ProviderModel) -> CatalogEntry:
        provider = row.provider
        return CatalogEntry(
            ref=f"{provider.id}/{row.model_id}",
            provider_id=provider.id,
            provider_name=provider.display_name,
            info=self._info(row),
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
class _Dated:
    """An answer built from a model's prices, and when the next of them dated later comes into
    force (None: none is), when it must be built again."""

    value: Any
    until: datetime | None

    def current(self) -> bool:
        return self.until is None or timezone.now() < self.until


def _next_price(row: ProviderModel) -> datetime | None:
    now = timezone.now()
    return min((p.valid_from for p in row.prices.all() if p.valid_from > now), default=None)


@functools.cache
def _builtin_kinds() -> tuple[ProviderDefinition, ...]:
    return tuple(load_file(BUILTIN_FILE, dialects=ADAPTERS))


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


registry = ProviderRegistry()
