"""Which URLs the platform accepts as a workspace's address (DESIGN §6).

One pure function, used by the platform emulator to decide and by the
adapter to predict. It never resolves names itself: callers pass the
addresses a host resolved to.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["address_verdict", "url_verdict"]

_ALWAYS_REFUSED = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/32",
        "::/128",
        "169.254.0.0/16",
        "fe80::/10",
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "100.64.0.0/10",
        "224.0.0.0/4",
        "fc00::/8",
        "2001:db8::/32",
    )
)
_LOOPBACK = tuple(ipaddress.ip_network(net) for net in ("127.0.0.0/8", "::1/128"))
_PRIVATE = tuple(
    ipaddress.ip_network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8")
)


def address_verdict(address: str, mode: str) -> str | None:
    """Why ``mode`` ('saas', 'self-hosted', 'local') refuses ``address``, or None."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in _LOOPBACK):
        return None if mode == "local" else f"{address} is a loopback address"
    if any(ip in net for net in _ALWAYS_REFUSED):
        return f"{address} is a reserved, link-local or unroutable address"
    if mode == "self-hosted" and any(ip in net for net in _PRIVATE):
        return f"{address} is a private address, refused in self-hosted mode"
    return None


def url_verdict(url: str, mode: str, resolved: Sequence[str] | None = None) -> str | None:
    """Why the platform in ``mode`` refuses ``url``, or None when it accepts it.

    ``resolved`` are the addresses the URL's host name resolved to (None or
    empty: it did not resolve). An IP literal host needs none.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "it is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "only http and https URLs are accepted"
    host = parts.hostname
    if not host:
        return "it has no host"
    del port
    try:
        ipaddress.ip_address(host)
        addresses: Sequence[str] = [host]
    except ValueError:
        if not resolved:
            return f"host {host} does not resolve"
        addresses = resolved
    for address in addresses:
        reason = address_verdict(address, mode)
        if reason is not None:
            return reason if address == host else f"{host} resolves to {reason}"
    return None
