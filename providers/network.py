"""Which addresses the hub may connect to on a provider's behalf (server-side request forgery).

A team admin may point a provider at public addresses only. Loopback, private, link-local and other
non-public ranges (a local Ollama, LM Studio, vLLM; but also 169.254.169.254, a cloud's metadata
service) need a provider whose endpoint a site admin set (`Provider.private_network`), or an
address or host name in LLMHUB_ALLOWED_PRIVATE_NETWORKS. The hub itself is never an upstream.

The rule is applied twice: when an endpoint is saved (a clear form error) and when a connection is
opened, to the addresses the name resolves to at that moment (providers/http.py connects to the
address it checked), so a DNS answer that changes after saving is refused too.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from django.conf import settings

from providers.transport import AiohttpTransport, PoolConnector

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Addresses this hub serves on, learned from the servers' own sockets (ASGI scope["server"]).
# Port 0 stands for "every address": a server bound to 0.0.0.0 answers on each local one.
_own_sockets: set[tuple[IPAddress | None, int]] = set()
_noted_servers: set[tuple[Any, int]] = set()  # scope["server"] values already in _own_sockets


class AddressRefused(Exception):
    """An endpoint or connection the policy forbids. Not an OSError: httpx passes it through as is.
    `reason` is safe to show: it names the host and the kind of address, never what answered there."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_url(url: str) -> tuple[str, int]:
    """The host and port of an endpoint URL, or AddressRefused for one the hub will not use."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise AddressRefused(f"{url!r} is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AddressRefused("The endpoint must be an http:// or https:// URL with a host.")
    if parts.username is not None or parts.password is not None:
        raise AddressRefused(
            "The endpoint must not contain a user name or password: keys go in the key field."
        )
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        raise AddressRefused("The endpoint must not contain a query string (?…) or a fragment (#…).")
    return parts.hostname, port


def check_endpoint(url: str, private_network: bool) -> None:
    """Save-time check of an endpoint: its form, the hub's own names, and a host written as an
    address in any spelling (2130706433, 0177.0.0.1, [::ffff:127.0.0.1]) or named localhost. Other
    names are not looked up here: the connect-time check resolves them, on every new connection."""
    host, port = check_url(url)
    if host.lower().rstrip(".") in _own_names():
        raise AddressRefused(f"{host} is this hub: a provider cannot point back at it.")
    if host.lower().rstrip(".") == "localhost" or host.lower().rstrip(".").endswith(".localhost"):
        addresses = ["127.0.0.1", "::1"]  # RFC 6761: localhost names are loopback, whatever DNS says
    else:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
        except (socket.gaierror, UnicodeError):
            found = []  # a name: never resolved at save time
        addresses = [info[4][0] for info in found]
    check_addresses(host, port, addresses, private_network)


def check_addresses(host: str, port: int, addresses: Iterable[str], private_network: bool) -> list[str]:
    """The addresses to connect to, each allowed; AddressRefused if any one is not (a name that
    resolves to one public and one private address is refused as a whole)."""
    if host.lower().rstrip(".") in _own_names():
        raise AddressRefused(f"{host} is this hub: a provider cannot point back at it.")
    allowed = []
    for text in addresses:
        address = _unwrap(ipaddress.ip_address(text.split("%")[0]))
        if _is_own(address, port):
            raise AddressRefused(f"{host} is this hub: a provider cannot point back at it.")
        if not _is_public(address) and not private_network and not _allow_listed(host, address):
            raise AddressRefused(
                f"{host} is a {_kind(address)} address. Only a site admin can connect a provider on "
                "the hub's own network (or add it to LLMHUB_ALLOWED_PRIVATE_NETWORKS)."
            )
        allowed.append(text)
    return allowed


def note_server(scope: dict[str, Any]) -> None:
    """Remember the socket a request arrived on as one of the hub's own. A server address already
    noted is not parsed again (~5 µs a request): a server serves on a few sockets, for its life."""
    server = scope.get("server")
    if not server or server[1] is None or (noted := (server[0], server[1])) in _noted_servers:
        return
    _noted_servers.add(noted)
    try:
        address = _unwrap(ipaddress.ip_address(str(server[0]).split("%")[0]))
    except ValueError:
        return  # a unix socket path
    _own_sockets.add((None, server[1]) if address.is_unspecified else (address, server[1]))


class GuardedConnector(PoolConnector):
    """The hub's pool (providers/transport.py) with the policy applied between name resolution and
    connect: the name is resolved here, every address checked, and only checked addresses are
    connected to (TLS still verifies the name). Each new connection resolves again (no DNS cache).

    The policy sits in `_resolve_host`, aiohttp's one step from a URL's host to the addresses it
    connects to, and not in a resolver (aiohttp.abc.AbstractResolver): aiohttp answers a host
    written as an IP address itself, without asking the resolver, which would let 127.0.0.1 or
    169.254.169.254 through unchecked (tests/providers/test_network.py connects to both kinds)."""

    def __init__(
        self, private_network: bool, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(limits, ssl_context or tls_context())
        self.private_network = private_network

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[dict[str, Any]]:
        try:
            found = await self._loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except UnicodeError as error:
            raise OSError(f"cannot resolve {host}: {error}") from None
        addresses = check_addresses(host, port, [info[4][0] for info in found], self.private_network)
        families = {info[4][0]: info[0] for info in found}
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": families[address],
                "proto": 0,
                "flags": 0,
            }
            for address in dict.fromkeys(addresses)
        ]


@lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context for providers: certifi's CA bundle, verified, no settings from
    the environment. Building one reads and parses the whole bundle (~35 ms of CPU on the event
    loop, measured): each transport used to build two (httpx's own, then the pool's), four for a
    process's two pools, all on its first provider call. A context only holds what to trust, so
    every pool can share it; llmhub/warm.py builds it before the server serves."""
    return httpx.create_ssl_context(trust_env=False)


def guarded_transport(private_network: bool, limits: httpx.Limits) -> AiohttpTransport:
    """An httpx transport whose every new connection passes the policy. It keeps no cookies (a
    cookie one team's provider sets must never reach another team's request) and never uses
    proxies from the environment: through a proxy the hub could not tell where a request goes."""
    session = aiohttp.ClientSession(
        connector=GuardedConnector(private_network, limits),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )
    return AiohttpTransport(session)


class NoteOwnAddressMiddleware:
    """ASGI: every request tells the hub one of the addresses it is served on."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        note_server(scope)
        return await self.app(scope, receive, send)


def _unwrap(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped (::ffff:127.0.0.1), 6to4 or NAT64 IPv6 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address.ipv4_mapped
        if address.sixtofour:
            return address.sixtofour
        if address in NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _is_public(address: IPAddress) -> bool:
    return address.is_global and not address.is_multicast


def _is_own(address: IPAddress, port: int) -> bool:
    return (address, port) in _own_sockets or ((None, port) in _own_sockets and not _is_public(address))


def _kind(address: IPAddress) -> str:
    if address.is_loopback or address.is_unspecified:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    return "private or reserved"


def _allow_listed(host: str, address: IPAddress) -> bool:
    networks, names = _allow_list(tuple(settings.LLMHUB_ALLOWED_PRIVATE_NETWORKS))
    return host.lower().rstrip(".") in names or any(address in network for network in networks)


@lru_cache(maxsize=8)
def _allow_list(entries: tuple[str, ...]) -> tuple[tuple[Any, ...], frozenset[str]]:
    networks, names = [], set()
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return tuple(networks), frozenset(names)


def _own_names() -> set[str]:
    """The hub's own public names: exact ALLOWED_HOSTS entries (IP addresses and localhost are
    told apart by port, from the sockets it serves on)."""
    names = set()
    for entry in settings.ALLOWED_HOSTS:
        name = entry.lower().rstrip(".")
        if name.startswith(".") or "*" in name or name in ("localhost", "testserver"):
            continue
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            names.add(name)
    return names
