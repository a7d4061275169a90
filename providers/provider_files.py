"""The operator's providers files: LLMHUB_PROVIDERS_FILE and providers.d/*.toml.

Their kinds are read into memory on first use, without writing anything (reads never write), and
again by `reload`, which also sets up the providers whose key is in the environment. A malformed
file changes nothing: the running set stays as it was and the error is kept to be shown.
"""

from __future__ import annotations

import logging
import os

from django.conf import settings
from django.db import DatabaseError

from providers.base import ProviderAdapter
from providers.credentials import CredentialsMissing
from providers.definitions import DefinitionError, ProviderDefinition, load_user_files
from providers.kinds import builtin_kinds

log = logging.getLogger(__name__)


class ProviderFiles:
    """The files part of a ProviderRegistry (providers/registry.py): it keeps the files' kinds
    (`_file_kinds`, read once `_files_loaded`) and the last error (`file_error`), and sets providers
    up with the registry's `save`."""

    _adapters: dict[str, str | type[ProviderAdapter]]
    _file_kinds: tuple[ProviderDefinition, ...]
    _files_loaded: bool
    file_error: str

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
                settings.LLMHUB_PROVIDERS_FILE, self._adapters, {k.id for k in builtin_kinds()}
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
