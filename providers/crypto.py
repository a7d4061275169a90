"""The only module that sees credential plaintext next to its ciphertext.

Credentials are a JSON object encrypted with MultiFernet: the first key encrypts, every key decrypts,
so a key is rotated by putting a new one in front and re-encrypting (`manage.py rotate_credentials`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.core.exceptions import ImproperlyConfigured

from providers import keyfile


class Secret:
    """A credential value whose repr and str are masked, so it cannot leak by being printed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({mask(self._value)!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


class CredentialsUnreadable(Exception):
    """Stored credentials that none of the configured keys can decrypt."""


_PREFIX = re.compile(r"^[A-Za-z]{1,5}-")


def mask(secret: str) -> str:
    """`sk-proj-abc...vX2Q` -> `sk-...vX2Q`: the vendor prefix and the last four characters at most.

    Short values (under 12 characters) show nothing of themselves: four characters of an
    eight-character secret would be half of it.
    """
    if not secret:
        return ""
    if len(secret) < 12:
        return "••••"
    prefix = _PREFIX.match(secret)
    return f"{prefix.group(0) if prefix else ''}...{secret[-4:]}"


def _fernet(keys: Sequence[str] | None = None, encrypting: bool = False) -> MultiFernet:
    if keys is None:
        keys = keyfile.for_new_credentials() if encrypting else keyfile.configured()
    if not keys:
        raise CredentialsUnreadable(keyfile.missing_key_message())
    try:
        return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            "LLMHUB_ENCRYPTION_KEYS holds a value that is not a Fernet key "
            "(32 url-safe base64-encoded bytes)."
        ) from None


def encrypt(credentials: Mapping[str, str], bound_to: Mapping[str, Any] | None = None) -> str:
    """Ciphertext of the credentials together with what they are bound to (the endpoint and headers
    they may be sent with): changing the binding in the database cannot redirect a key."""
    plain = {"credentials": dict(credentials), "bound_to": dict(bound_to or {})}
    return _fernet(encrypting=True).encrypt(json.dumps(plain).encode()).decode()


def decrypt(token: str) -> dict[str, str]:
    return decrypt_bound(token)[0]


def decrypt_bound(token: str) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The credentials and their binding; None for credentials saved before keys were bound."""
    if not token:
        return {}, None
    try:
        plain = json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken:
        raise CredentialsUnreadable(
            "Stored credentials cannot be decrypted with the configured keys. "
            "Was LLMHUB_ENCRYPTION_KEYS or the key file changed?"
        ) from None
    if set(plain) == {"credentials", "bound_to"} and isinstance(plain["credentials"], dict):
        return plain["credentials"], plain["bound_to"] or None
    return plain, None


def rotate(token: str) -> str:
    """Re-encrypt with the newest key (MultiFernet.rotate keeps the original timestamp)."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise CredentialsUnreadable("Stored credentials cannot be decrypted with any key.") from None


def generate_key() -> str:
    return Fernet.generate_key().decode()
