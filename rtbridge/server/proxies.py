"""The real client address behind trusted proxies (``RTBRIDGE_SERVER['trusted_proxies']``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from django.core.exceptions import ImproperlyConfigured

__all__ = ["TrustedProxies"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """Find the client's address from ``X-Forwarded-For`` / ``X-Real-IP`` set by trusted proxies.

    The headers are believed only when the TCP peer is a trusted proxy (an address or a
    network such as ``"10.0.0.0/8"``); by default none is, so they are never believed. In
    ``X-Forwarded-For`` each proxy appends the address it received the request from, so it
    is read from the right: trusted proxies are skipped, and the first address that is not
    one is the client (anything left of it was written by the client and proves nothing).
    Without ``X-Forwarded-For``, ``X-Real-IP`` (nginx's ``$remote_addr``) is used.
    """

    def __init__(self, proxies: Iterable[str] = ()) -> None:
        self.networks: list[Network] = []
        for entry in proxies:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except (TypeError, ValueError):
                raise ImproperlyConfigured(
                    f"RTBRIDGE_SERVER['trusted_proxies'] has {entry!r}, which is not an IP "
                    "address or network; give e.g. ['127.0.0.1', '10.0.0.0/8']."
                ) from None

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        """Return whether ``address`` is one of the trusted proxies."""
        ip = _parse(address)
        return ip is not None and any(ip in network for network in self.networks)

    def client_address(self, peer: str, headers: Mapping[str, str]) -> str:
        """Return the client's address for a request from ``peer`` carrying ``headers``."""
        if not self.networks or not self.trusts(peer):
            return peer
        forwarded = headers.get("X-Forwarded-For")
        if forwarded:
            hops = [hop.strip() for hop in forwarded.split(",")]
            for hop in reversed(hops):
                if _parse(hop) is None:
                    return peer  # a malformed chain: believe nothing in it
                if not self.trusts(hop):
                    return hop
            return hops[0]  # every hop is a proxy of ours: the first one is the client
        real_ip = headers.get("X-Real-IP", "").strip()
        return real_ip if _parse(real_ip) is not None else peer


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None
