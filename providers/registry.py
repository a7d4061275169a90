"""Which providers exist and how to reach them.

Two lookups, as Django's caches do: a provider id ("openai", "office-vllm") names a database row,
and the row's dialect names an adapter class in ADAPTERS (providers/kinds.py). Kinds of provider a
user can set up come from definitions (the built-in file, the operator's files, the UI), never from
code. The registry is one object callers ask (`registry`); its parts live beside it: kinds and
dialects (providers/kinds.py), the providers files (providers/provider_files.py), setting providers
up (providers/setup.py) and their models as catalogue entries (providers/catalog_entries.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from llmhub import conf
from providers import configuration
from providers import credentials as saved_keys
from providers.base import ProviderAdapter, ProviderConfig
from providers.catalog_entries import CatalogEntries, Dated, next_price, row_info
from providers.crypto import Secret
from providers.definitions import ProviderDefinition
from providers.kinds import ADAPTERS, ProviderKinds
from providers.models import Provider, ProviderModel
from providers.provider_files import ProviderFiles
from providers.setup import ProviderSetup


class UnknownProvider(LookupError):
    def __init__(self, provider_id: str) -> None:
        super().__init__(f"No provider {provider_id!r} is configured.")


class ProviderRegistry(ProviderKinds, ProviderFiles, ProviderSetup, CatalogEntries):
    """Provider id -> an adapter configured for it, and the operations around configuration."""

    def __init__(self, adapters: Mapping[str, str | type[ProviderAdapter]] = ADAPTERS) -> None:
        self._adapters: dict[str, str | type[ProviderAdapter]] = dict(adapters)
        self._file_kinds: tuple[ProviderDefinition, ...] = ()
        self._files_loaded = False
        self.file_error = ""  # the last providers-file error; the running set stayed as it was

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
            conf.setting("LLMHUB_REQUEST_TIMEOUT"),
            conf.setting("LLMHUB_VALIDATION_TIMEOUT"),
        )
        return configuration.cached(
            key,
            lambda: Dated(adapter_class(self.config_for(row.provider, models=[row])), next_price(row)),
            Dated.current,
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
                map(row_info, provider.models.prefetch_related("prices") if models is None else models)
            ),
            default_model=provider.default_model,
            validation_timeout=settings.LLMHUB_VALIDATION_TIMEOUT,
            request_timeout=settings.LLMHUB_REQUEST_TIMEOUT,
        )

    def usable_credentials(self, provider: Provider, kind: ProviderDefinition | None) -> dict[str, str]:
        """The stored credentials, when they may be sent where the provider now points (KeyUnusable)."""
        return saved_keys.usable(provider, kind, self._secret_names(provider.dialect))

    def enable(self, provider_id: str) -> None:
        self._set_enabled(provider_id, True)

    def disable(self, provider_id: str) -> None:
        self._set_enabled(provider_id, False)

    @transaction.atomic
    def _set_enabled(self, provider_id: str, enabled: bool) -> None:
        if not Provider.objects.filter(pk=provider_id).update(enabled=enabled, updated_at=timezone.now()):
            raise UnknownProvider(provider_id)
        configuration.changed()  # an update() sends no post_save


registry = ProviderRegistry()
