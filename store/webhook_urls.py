"""Where a webhook may point: http(s) only, never link-local or cloud metadata addresses, never the service
itself, and private or loopback addresses only with `webhook_allow_private_hosts` (docs/webhooks.md)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SCHEMES = {"http": 80, "https": 443}
# Cloud metadata endpoints outside 169.254.0.0/16 (AWS's IPv6 one is a unique-local address).
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254")})
PRIVATE_SETTING = "webhook_allow_private_hosts"


class WebhookUrlRefused(ValueError):
    """The URL may not be a webhook; the message says why."""


class HostUnresolved(WebhookUrlRefused):
    """The URL's host does not resolve (now: a later attempt may resolve it)."""


def split_url(url: str) -> tuple[str, int]:
    """The host and port of an http(s) URL; raises `WebhookUrlRefused` for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.hostname:
        raise WebhookUrlRefused("must be an http:// or https:// URL with a host")
    try:
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlRefused(f"invalid port: {exc}") from exc
    return parts.hostname, port if port is not None else SCHEMES[parts.scheme]


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (IPv4-mapped IPv6 addresses as IPv4)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostUnresolved(f"host {host!r} does not resolve") from exc
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        addresses.append(address)
    return addresses


def check_address(address: IPAddress, allow_private: bool) -> None:
    """Raise `WebhookUrlRefused` for an address no webhook may reach."""
    if address.is_link_local or address in METADATA_ADDRESSES:
        raise WebhookUrlRefused(f"{address} is a link-local or cloud metadata address")
    if address.is_unspecified or address.is_multicast:
        raise WebhookUrlRefused(f"{address} is not a host address")
    if not address.is_global and not allow_private:
        raise WebhookUrlRefused(
            f"{address} is a loopback or private address (allowed only with {PRIVATE_SETTING})"
        )


def checked_addresses(url: str, allow_private: bool) -> tuple[int, list[IPAddress]]:
    """The port and resolved addresses of `url` after the scheme and address checks."""
    host, port = split_url(url)
    addresses = resolve(host, port)
    for address in addresses:
        check_address(address, allow_private)
    return port, addresses


def _endpoint_addresses(host: str) -> set[IPAddress]:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        try:
            return set(resolve(host, 0))
        except WebhookUrlRefused:
            return set()
    return {address}


def check_webhook_url(url: str, *, allow_private: bool, own_endpoints: Iterable[tuple[str, int]]) -> None:
    """Raise `WebhookUrlRefused` unless `url` may be a job's webhook.

    `own_endpoints` are the (host, port) pairs the service answers on; a URL reaching one of them is refused,
    and so is the service's port on any loopback address when the service binds all interfaces.
    """
    port, addresses = checked_addresses(url, allow_private)
    for host, own_port in own_endpoints:
        if own_port != port:
            continue
        own = _endpoint_addresses(host)
        if any(address.is_unspecified for address in own):
            own |= {address for address in addresses if address.is_loopback}
        if own & set(addresses):
            raise WebhookUrlRefused(f"points at this service itself ({host}:{own_port})")
