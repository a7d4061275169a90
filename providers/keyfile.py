"""The credential encryption keys: which are configured, creating the first one, and refusing to
run when stored credentials exist that no configured key can read.

A missing key file used to be replaced silently with a new key, and every stored credential became
unreadable. Now a key is generated only while no credential is stored; with stored credentials and
no key that reads them, the hub refuses to start (llmhub/apps.py) and names what to restore.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

from llmhub.environment import read_or_create_secret_file, read_secret_file


def configured() -> list[str]:
    """LLMHUB_ENCRYPTION_KEYS, else the key file (read again while there is none: another process of
    the hub may have just created it)."""
    if not settings.LLMHUB_ENCRYPTION_KEYS:
        settings.LLMHUB_ENCRYPTION_KEYS = read_secret_file(settings.LLMHUB_ENCRYPTION_KEY_FILE).split()
    return list(settings.LLMHUB_ENCRYPTION_KEYS)


def for_new_credentials() -> list[str]:
    """The keys to encrypt with. On a fresh install, a new key file (mode 0600); never while
    credentials are stored, which a new key could not read."""
    keys = configured()
    if keys:
        return keys
    if _stored_tokens():
        raise ImproperlyConfigured(missing_key_message())
    settings.LLMHUB_ENCRYPTION_KEYS = read_or_create_secret_file(
        settings.LLMHUB_ENCRYPTION_KEY_FILE, kind="fernet"
    ).split()
    return list(settings.LLMHUB_ENCRYPTION_KEYS)


def startup_problem() -> str:
    """Why the hub must not start ("" when it may): credentials are stored and none of them can
    be read with the configured keys. A database not migrated yet is no problem."""
    try:
        tokens = _stored_tokens()
    except DatabaseError:
        return ""
    if not tokens:
        return ""
    if configured() and any(_readable(token) for token in tokens):
        return ""
    return missing_key_message()


def missing_key_message() -> str:
    return (
        "Stored provider credentials cannot be decrypted: no configured encryption key reads them. "
        f"Restore the key file {settings.LLMHUB_ENCRYPTION_KEY_FILE} from your backup, or set "
        "LLMHUB_ENCRYPTION_KEYS to the key(s) they were saved with. If the key is lost for good, "
        "`manage.py forget_credentials --unreadable` removes the unreadable credentials (each key is "
        "then entered again)."
    )


def _readable(token: str) -> bool:
    from providers import crypto

    try:
        crypto.decrypt_bound(token)
    except crypto.CredentialsUnreadable:
        return False
    return True


def _stored_tokens() -> list[str]:
    from providers.models import Provider

    return list(
        Provider.objects.exclude(credentials_encrypted="").values_list("credentials_encrypted", flat=True)
    )
