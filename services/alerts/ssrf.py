"""Server-side request forgery guard for configured webhook URLs.

Webhook URLs come from configuration, and a webhook receiver answers with its own status codes
and bodies, so a URL aimed at an internal address (a cloud metadata service, the database's
admin port) would turn the alerts service into a probe of the internal network. Hence:

- a URL must be ``https`` with a host name, no credentials in it;
- every address the host resolves to must be public: not private, loopback, link-local,
  shared (CGNAT), multicast, reserved or unspecified, IPv4-mapped IPv6 included;
- the check happens when the configuration loads (:func:`check_destination`) **and** on every
  new connection (:class:`GuardedNetworkBackend`), which connects to the very address it checked,
  so DNS that changes between the check and the connection (DNS rebinding) gains nothing;
- redirects are never followed (the HTTP client is built with ``follow_redirects=False``).

``HEALTHSCORE_ALLOW_PRIVATE_WEBHOOKS=true`` lifts the address and scheme rules for tests and the
local demo, whose receivers listen on loopback over plain HTTP.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx


class UnsafeURLError(ValueError):
    """The URL or an address its host resolves to is not allowed for webhooks."""


class HostNotResolvedError(OSError):
    """The host does not resolve now; every connection is still checked when it is made."""


def check_address(address: str) -> None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        raise UnsafeURLError(f"address {ip} is not public")


def check_url(url: str, *, allow_private: bool) -> tuple[str, int]:
    """Check the URL's shape; return its host and port."""
    parts = urlsplit(url)
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise UnsafeURLError(f"scheme must be {' or '.join(allowed)}")
    if not parts.hostname:
        raise UnsafeURLError("URL needs a host")
    if parts.username or parts.password:
        raise UnsafeURLError("URL must not carry credentials")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not allow_private:
        try:
            check_address(parts.hostname)
        except ValueError as exc:
            if isinstance(exc, UnsafeURLError):
                raise
            # not an IP literal: checked when resolved
    return parts.hostname, port


async def resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def check_destination(url: str, *, allow_private: bool) -> None:
    """Check the URL and every address its host resolves to; raise UnsafeURLError, or
    HostNotResolvedError when the name does not resolve (yet)."""
    host, port = check_url(url, allow_private=allow_private)
    if allow_private:
        return
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise HostNotResolvedError(f"host {host} does not resolve: {exc.strerror or exc}") from None
    for address in addresses:
        check_address(address)


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks every address, then connects to the first checked address."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's backend interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await asyncio.wait_for(resolve(host, port), timeout)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        for address in addresses:
            check_address(address)
        return await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's backend interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeURLError("unix sockets are not webhook destinations")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def http_client(*, allow_private: bool, max_connections: int = 100) -> httpx.AsyncClient:
    """The HTTP client for webhooks: no redirects, no proxies from the environment, and (unless
    private webhooks are allowed) every connection checked by :class:`GuardedNetworkBackend`."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=20)
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    if not allow_private:
        # httpx builds its connection pool in __init__ without a way to pass a network backend;
        # replace the pool with the same settings plus the guarded backend.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(),
        )
    return httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)
