"""Server configuration: the ``RTBRIDGE_SERVER`` limits and the ``Origin`` policy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.http.request import split_domain_port, validate_host

from .. import conf

__all__ = ["SAME_ORIGIN_ONLY", "OriginPolicy", "ServerConfig"]

# What Django itself allows when DEBUG is on and ALLOWED_HOSTS is empty.
_DEBUG_LOCAL_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


@dataclass(frozen=True)
class ServerConfig:
    """The limits of one server, from ``RTBRIDGE_SERVER`` (see docs/server.md).

    Every field is a key of ``conf.SERVER_DEFAULTS``, where the defaults are written.
    """

    path: str
    public_url: str | None
    heartbeat: float
    idle_timeout: float
    max_frame_bytes: int
    max_subscriptions: int
    max_connections: int
    max_buffer_bytes: int
    abuse_threshold: int
    reconnect_max_delay: float
    stats_interval: float
    wsgi_threads: int
    serve_static: bool | None
    event_loop: str
    presence_ttl: float
    whisper_rate: int
    call_rate: int
    call_threads: int

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None) -> ServerConfig:
        """Build the config from ``RTBRIDGE_SERVER`` with ``overrides`` applied on top."""
        values = conf.server_settings(overrides)
        # Durations may be given as ints; the server computes with floats.
        typed: dict[str, Any] = {k: float(v) if k in _SECONDS else v for k, v in values.items()}
        return cls(**typed)


_SECONDS = frozenset(f.name for f in fields(ServerConfig) if f.type == "float")


class OriginPolicy:
    """Decide whether a page at ``Origin`` may open a socket.

    The rule (docs/server.md, "Allowed origins"):

    * ``RTBRIDGE_ALLOWED_ORIGINS = "*"`` (or a list holding ``"*"``) allows every origin.
    * A list of origins (``"https://example.com"``, ``"http://localhost:8000"``) allows exactly
      those (scheme, host and port compared; default ports may be left out).
    * ``None`` (the default) derives the rule from ``ALLOWED_HOSTS``: an ``http`` or ``https``
      origin on any port whose host Django would accept (``.example.com`` covers subdomains).
      A ``"*"`` in ``ALLOWED_HOSTS`` counts only when ``DEBUG`` is on, because a wildcard
      host in production usually means "a proxy checks the host", not "any web page may
      connect"; list the origins explicitly then. With ``DEBUG`` on and ``ALLOWED_HOSTS``
      empty, localhost, 127.0.0.1 and [::1] are allowed, as Django does.
    * Whatever the setting, a page on the socket's own host and port (same origin) is allowed;
      with the rule derived from ``ALLOWED_HOSTS``, only when that host passes it (as Django
      checks the Host header), so a DNS-rebinding page does not count as same origin.

    Requests without an ``Origin`` header come from non-browser clients and are allowed;
    browsers always send one, so a cross-site page cannot use this gap.
    """

    def __init__(
        self,
        allowed_origins: str | Iterable[str] | None,
        allowed_hosts: Iterable[str] = (),
        debug: bool = False,
    ) -> None:
        self.any_origin = False
        self.origins: set[tuple[str, str, int]] = set()
        self.hosts: list[str] | None = None
        if allowed_origins is None:
            hosts = [h for h in allowed_hosts if debug or h != "*"]
            if debug and not list(allowed_hosts):
                hosts = list(_DEBUG_LOCAL_HOSTS)
            self.hosts = hosts
            return
        if isinstance(allowed_origins, str):
            allowed_origins = [allowed_origins]
        for entry in allowed_origins:
            if entry == "*":
                self.any_origin = True
                continue
            key = _origin_key(entry) if isinstance(entry, str) else None
            if key is None:
                raise ImproperlyConfigured(
                    f"RTBRIDGE_ALLOWED_ORIGINS has {entry!r}, which is not an origin; give "
                    "'scheme://host[:port]' such as 'https://example.com', or '*' for any."
                )
            self.origins.add(key)

    def trusts(self, origin: str, host: str | None = None) -> bool:
        """Return whether a page at ``origin`` may act as the visitor (use the session cookie).

        With ``"*"`` any page may listen to public channels, but only a same-origin page may
        make calls as the visitor; otherwise every allowed origin is trusted.
        """
        return not self.any_origin or SAME_ORIGIN_ONLY.allows(origin, host)

    @classmethod
    def from_settings(cls) -> OriginPolicy:
        """Build the policy from ``RTBRIDGE_ALLOWED_ORIGINS``, ``ALLOWED_HOSTS`` and ``DEBUG``."""
        origins, hosts, debug = conf.origin_settings()
        return cls(origins, hosts, debug)

    def allows(self, origin: str, host: str | None = None) -> bool:
        """Return whether a page at ``origin`` may connect to a socket served at ``host``."""
        if self.any_origin:
            return True
        key = _origin_key(origin)
        if key is None:
            return False
        scheme, domain, port = key
        if host:
            own_domain, own_port = split_domain_port(host.lower())
            default_port = 443 if scheme == "https" else 80
            same_origin = (
                own_domain == domain and (int(own_port) if own_port else default_port) == port
            )
            # With the rule derived from ALLOWED_HOSTS the Host header must pass it too, so a
            # DNS-rebinding page (its own name pointed at this server) is not "same origin".
            if same_origin and (self.hosts is None or validate_host(own_domain, self.hosts)):
                return True
        if self.hosts is not None:
            return bool(domain) and validate_host(domain, self.hosts)
        return key in self.origins


def _origin_key(origin: str) -> tuple[str, str, int] | None:
    """Return ``(scheme, host, port)`` of an ``http(s)`` origin, or ``None`` if it is not one."""
    try:
        parts = urlsplit(origin.strip().lower())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    domain, port_text = split_domain_port(parts.netloc)
    if not domain:
        return None
    port = int(port_text) if port_text else (443 if parts.scheme == "https" else 80)
    return parts.scheme, domain, port


#: Allows a page on the socket's own host and port only.
SAME_ORIGIN_ONLY = OriginPolicy(())
