"""Settings the hot path reads on every request, each read from django.conf.settings once.

A read of django.conf.settings runs LazyObject.__getattribute__ in Python, which asks the value
for `_mask_wrapped` and, for an int, a bool or a string, makes and drops an AttributeError:
~3,000 instructions a read (callgrind), and /v1/chat/completions read ~16 of ours and called
timezone.now() (a read of USE_TZ) ~9 times. Here a read is a dict lookup.

Django's setting_changed signal (sent by override_settings and pytest-django's `settings` fixture)
empties the cache, so a changed setting is read again. A setting assigned directly at run time
(providers/keyfile.py's LLMHUB_ENCRYPTION_KEYS) sends no signal: it is not read through here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

_values: dict[str, Any] = {}


def setting(name: str) -> Any:
    """settings.<name>, as it was when first read since the last change of any setting."""
    try:
        return _values[name]
    except KeyError:
        value = _values[name] = getattr(settings, name)
        return value


def now() -> datetime:
    """django.utils.timezone.now(): the same datetime (aware, in UTC, with USE_TZ), without its
    read of settings."""
    return datetime.now(UTC if setting("USE_TZ") else None)


def _forget(**kwargs: Any) -> None:
    _values.clear()


setting_changed.connect(_forget, dispatch_uid="llmhub.conf")
