"""The address a request came from, as the lockouts and the audit log count it."""

from __future__ import annotations

from django.http import HttpRequest

from llmhub import conf


def client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR, or, behind LLMHUB_TRUSTED_PROXIES reverse proxies, the address the first of
    them saw (each proxy appends to X-Forwarded-For, so the entries a client wrote itself come
    first and are never believed)."""
    proxies = conf.setting("LLMHUB_TRUSTED_PROXIES")
    remote = request.META.get("REMOTE_ADDR", "") or ""
    if proxies <= 0:
        return remote
    forwarded = [
        part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()
    ]
    return forwarded[-proxies] if len(forwarded) >= proxies else remote
