"""What can be set up: dialects and kinds of provider.

A dialect names the adapter class that speaks a wire format (ADAPTERS); a kind is a definition that
names a dialect and supplies its data (endpoint, key settings, models). Kinds come from the built-in
file, the operator's providers files (providers/provider_files.py) and the UI (CustomKind rows),
never from code.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Collection, Iterable

from django.db import models
from django.utils.module_loading import import_string

from accounts.models import Team
from providers.base import CredentialField, ModelInfo, ProviderAdapter
from providers.definitions import BUILTIN_FILE, DefinitionError, ProviderDefinition, load_file, parse_entry
from providers.models import CustomKind, Provider

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


class UnknownKind(LookupError):
    def __init__(self, kind: str, known: Iterable[str]) -> None:
        super().__init__(f"No provider kind {kind!r}. Known kinds: {', '.join(sorted(known))}.")


@functools.cache
def builtin_kinds() -> tuple[ProviderDefinition, ...]:
    """The kinds of providers/builtin.toml, read once a process."""
    return tuple(load_file(BUILTIN_FILE, dialects=ADAPTERS))


class ProviderKinds:
    """The dialects and kinds a ProviderRegistry knows (providers/registry.py, whose part this is):
    its `_adapters` (dialect -> adapter class) and the kinds of the files it read (ProviderFiles)."""

    _adapters: dict[str, str | type[ProviderAdapter]]
    _file_kinds: tuple[ProviderDefinition, ...]

    def register(self, dialect: str, adapter: str | type[ProviderAdapter]) -> None:
        self._adapters[dialect] = adapter

    def dialects(self) -> list[str]:
        return sorted(self._adapters)

    def adapter_class(self, dialect: str) -> type[ProviderAdapter]:
        adapter = self._adapters[dialect]
        if isinstance(adapter, str):
            # Imported on first use, then kept: import_string costs a few thousand instructions a
            # call (a split, sys.modules, the module's spec read), and a request asks 4 times.
            adapter = self._adapters[dialect] = import_string(adapter)
        return adapter

    def kinds(self) -> list[ProviderDefinition]:
        """Every kind of provider that can be set up: built-in, from files, then defined in the UI."""
        self._read_files_once()
        builtin = [kind for kind in builtin_kinds() if kind.dialect in self._adapters]
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

    def credential_fields(self, kind: ProviderDefinition) -> tuple[CredentialField, ...]:
        """The dialect's fields, with the key made optional where the definition says so."""
        fields = self.adapter_class(kind.dialect).credential_fields
        if kind not in builtin_kinds():
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

    def kind_of(self, provider: Provider) -> ProviderDefinition | None:
        """The kind a provider was set up from: built-in or file kinds from memory, a custom kind
        from its one row."""
        self._read_files_once()
        for kind in (*builtin_kinds(), *self._file_kinds):
            if kind.id == provider.kind:
                return kind
        rows = CustomKind.objects.filter(pk=provider.kind)
        return next(iter(self.custom_kinds(rows)), None)

    @staticmethod
    def builtin_model(model_id: str) -> ModelInfo | None:
        """A model of the built-in catalogue by its id ("gpt-4o"), whichever provider lists it."""
        return next((m.info for kind in builtin_kinds() for m in kind.models if m.info.id == model_id), None)

    def _secret_names(self, dialect: str) -> set[str]:
        return {f.name for f in self.adapter_class(dialect).credential_fields if f.secret}
