"""Where a saved key may go. Credentials are encrypted together with the endpoint, key header, key
prefix and extra headers they were saved with (their binding); a key is sent only while the provider
still points there. Changing any of them, in a form, the Django admin or the database, needs the key
typed again: a team admin cannot send a stored key to a server of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.crypto import CredentialsUnreadable
from providers.definitions import ProviderDefinition
from providers.errors import KeyUnusable
from providers.models import Provider

KEY_AGAIN = "Enter the key again: a saved key is only sent to the endpoint it was saved for."


class CredentialsMissing(ValueError):
    pass


def binding(endpoint: str, kind: ProviderDefinition | None) -> dict[str, Any]:
    """Where a saved key may be sent: the endpoint, and the header, prefix and extra headers it goes
    with (a changed key header could hand it to whatever logs that header)."""
    return {
        "endpoint": endpoint.rstrip("/"),
        "auth_header": kind.auth_header if kind else "",
        "auth_scheme": kind.auth_scheme if kind else "Bearer",
        "headers": [list(header) for header in kind.headers] if kind else [],
    }


def usable(provider: Provider, kind: ProviderDefinition | None, secrets: set[str]) -> dict[str, str]:
    """The stored credentials, when they may be sent where the provider now points. KeyUnusable
    when no configured encryption key reads them, or a secret was saved for somewhere else.
    Credentials saved before keys were bound count as bound to where the provider points."""
    try:
        stored, bound_to = provider.bound_credentials()
    except CredentialsUnreadable:
        raise KeyUnusable(provider.display_name, unreadable=True) from None
    moved = bound_to is not None and bound_to != binding(provider.endpoint, kind)
    if moved and any(stored.get(name) for name in secrets):
        raise KeyUnusable(provider.display_name)
    return stored


def merge(
    provider: Provider | None,
    saved_kind: ProviderDefinition | None,
    kind: ProviderDefinition,
    typed: Mapping[str, str],
    endpoint: str,
    secrets: set[str],
) -> dict[str, str]:
    """What a save or a connection test may use: the typed values, then the stored ones; a stored
    secret only for the endpoint and headers it was saved with. CredentialsMissing (KEY_AGAIN) when
    a saved secret would be needed somewhere else. A typed empty non-secret clears it."""
    if provider is None:
        return {k: v for k, v in typed.items() if v}
    try:
        stored, bound_to = provider.bound_credentials()
    except CredentialsUnreadable:
        stored, bound_to = {}, None
    saved_for = bound_to or binding(provider.endpoint, saved_kind)
    same_place = saved_for == binding(endpoint, kind)
    kept = {k: v for k, v in stored.items() if k not in secrets or same_place}
    merged = {**kept, **{k: v for k, v in typed.items() if v or k not in secrets}}
    merged = {k: v for k, v in merged.items() if v}
    if any(stored.get(name) and not merged.get(name) for name in secrets):
        raise CredentialsMissing(KEY_AGAIN)
    return merged
