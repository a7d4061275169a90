"""Sign-ins in the audit log: each success, each failure, and each lockout (django-axes)."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from accounts.clients import client_address
from audit import log


@receiver(user_logged_in)
def signed_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    log.record(user, "signed_in", user, after={"address": _address(request)})


@receiver(user_login_failed)
def sign_in_failed(sender: Any, credentials: dict, request: HttpRequest | None = None, **kwargs: Any) -> None:
    # Django has already masked the password in `credentials`; only the name typed is kept.
    username = str(credentials.get("username", ""))[:150]
    log.record(
        None,
        "sign_in_failed",
        username or "(no name)",
        after={"username": username, "address": _address(request)},
    )


@receiver(user_locked_out)
def locked_out(
    sender: Any, request: HttpRequest | None, username: str | None, ip_address: str | None, **kwargs: Any
) -> None:
    log.record(
        None,
        "sign_in_locked_out",
        username or ip_address or "(unknown)",
        after={"username": username or "", "address": ip_address or ""},
    )


def _address(request: HttpRequest | None) -> str:
    return client_address(request) if request is not None else ""
