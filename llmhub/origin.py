"""Websockets are accepted only from pages of the hub itself: same scheme, host and port.

Channels' AllowedHostsOriginValidator compares only the origin's host with ALLOWED_HOSTS, so a page
on http://hub:8080 (another service on the same host) could open the hub's sockets with the
visitor's session. Here the Origin must be the hub's own address as the browser sees it: the Host
header, with https when the request came through TLS (directly, or as the proxy's header says), or
one of CSRF_TRUSTED_ORIGINS.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


class SameOriginValidator:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not allowed(scope):
            # Refuse before the consumer sees it: a close before accept ends the handshake with 403.
            await receive()  # websocket.connect
            return await send({"type": "websocket.close", "code": 1008})
        return await self.app(scope, receive, send)


def allowed(scope: dict[str, Any]) -> bool:
    headers = {name.lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}
    origin, host = headers.get(b"origin", ""), headers.get(b"host", "")
    if not origin or not host:
        return False
    domain, _ = split_domain_port(host)
    own = _address(f"{_scheme(scope, headers)}://{host}")
    if own is None or not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    trusted = {_address(url) for url in settings.CSRF_TRUSTED_ORIGINS}
    return _address(origin) in {own} | trusted


def _scheme(scope: dict[str, Any], headers: dict[bytes, str]) -> str:
    if scope.get("scheme") == "wss":
        return "https"
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        name = proxy[0].removeprefix("HTTP_").lower().replace("_", "-").encode()
        if headers.get(name, "").split(",")[0].strip() == proxy[1]:
            return "https"
    return "http"


def _address(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.scheme, parts.hostname.lower(), port
