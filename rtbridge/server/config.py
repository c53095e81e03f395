"""Server configuration: the ``RTBRIDGE_SERVER`` limits and the ``Origin`` policy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.http.request import split_domain_port, validate_host

from .. import conf

__all__ = ["OriginPolicy", "ServerConfig"]

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
    max_json_depth: int
    compression: bool
    health_path: str | None
    ready_path: str | None
    metrics_path: str | None
    log_format: str
    trusted_proxies: tuple[str, ...]
    #: ``RTBRIDGE_TOKEN_TTL``, read with the rest (tokens older than this are refused).
    token_ttl: int

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None) -> ServerConfig:
        """Build the config from ``RTBRIDGE_SERVER`` with ``overrides`` applied on top."""
        values = conf.server_settings(overrides)
        # Durations may be given as ints; the server computes with floats.
        typed: dict[str, Any] = {k: float(v) if k in _SECONDS else v for k, v in values.items()}
        typed["trusted_proxies"] = tuple(typed["trusted_proxies"])
        return cls(**typed, token_ttl=conf.token_ttl())


_SECONDS = frozenset(f.name for f in fields(ServerConfig) if f.type == "float")


class OriginPolicy:
    """Decide whether a page at ``Origin`` may open a socket served at ``Host``.

    The rule (docs/server.md, "Allowed origins"), in every mode:

    1. The ``Host`` header must pass ``ALLOWED_HOSTS`` exactly as Django checks it (with
       ``DEBUG`` on and ``ALLOWED_HOSTS`` empty: localhost, 127.0.0.1 and [::1]).
    2. The ``Origin`` must then be allowed by ``RTBRIDGE_ALLOWED_ORIGINS``:

       * ``"*"`` (or a list holding ``"*"``) allows every origin.
       * A list of origins (``"https://example.com"``, ``"http://localhost:8000"``) allows
         exactly those (scheme, host and port compared; default ports may be left out), and
         the socket's own origin (same scheme's port on the ``Host``) when that host is named
         in ``ALLOWED_HOSTS``.
       * ``None`` (the default) derives the rule from ``ALLOWED_HOSTS``: an ``http`` or
         ``https`` origin on any port whose host is named there (``.example.com`` covers
         subdomains).

       "Named" means matched by an entry other than ``"*"``: a wildcard host in production
       usually means "a proxy checks the host", not "any web page may connect", so it counts
       only when ``DEBUG`` is on. So a DNS-rebinding page (the attacker's own name pointed at
       this server, ``Origin`` and ``Host`` agreeing) is refused in every mode but ``"*"``.

    Requests without an ``Origin`` header come from non-browser clients and are allowed
    (browsers always send one, so a cross-site page cannot use this gap); the ``Host`` check
    applies to them too. ``allowed_hosts=None`` (a server embedded without Django settings)
    skips the ``Host`` check.
    """

    def __init__(
        self,
        allowed_origins: str | Iterable[str] | None,
        allowed_hosts: Iterable[str] | None = None,
        debug: bool = False,
    ) -> None:
        self.any_origin = False
        self.origins: set[tuple[str, str, int]] = set()
        #: Derived from ALLOWED_HOSTS (``RTBRIDGE_ALLOWED_ORIGINS = None``)?
        self.derived = allowed_origins is None
        #: What the Host header must match (Django's rule), or None: not checked.
        self.valid_hosts: list[str] | None = None
        #: The hosts an Origin (or a same-origin Host) must match: no "*" unless DEBUG.
        self.named_hosts: list[str] = []
        if allowed_hosts is not None:
            hosts = list(allowed_hosts)
            if debug and not hosts:
                hosts = list(_DEBUG_LOCAL_HOSTS)
            self.valid_hosts = hosts
            self.named_hosts = [h for h in hosts if debug or h != "*"]
        if allowed_origins is None:
            if allowed_hosts is None:
                raise ImproperlyConfigured(
                    "RTBRIDGE_ALLOWED_ORIGINS=None derives the allowed origins from "
                    "ALLOWED_HOSTS, but no ALLOWED_HOSTS were given; configure Django's "
                    "settings or give the origins (or '*')."
                )
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

    @classmethod
    def from_settings(cls, allowed_origins: Any = ...) -> OriginPolicy:
        """Build the policy from ``RTBRIDGE_ALLOWED_ORIGINS``, ``ALLOWED_HOSTS`` and ``DEBUG``.

        ``allowed_origins`` replaces ``RTBRIDGE_ALLOWED_ORIGINS`` when given. Without
        configured Django settings there is no ``ALLOWED_HOSTS``: the ``Host`` is not checked.
        """
        origins, hosts, debug = conf.origin_settings()
        return cls(origins if allowed_origins is ... else allowed_origins, hosts, debug)

    def allows_host(self, host: str | None) -> bool:
        """Return whether Django would serve a request with this ``Host`` header.

        ``None`` (no Host given, as in unit checks of the Origin rule alone) passes.
        """
        if self.valid_hosts is None or host is None:
            return True
        domain, _port = split_domain_port(host.lower())
        return bool(domain) and validate_host(domain, self.valid_hosts)

    def allows(self, origin: str, host: str | None = None) -> bool:
        """Return whether a page at ``origin`` may connect to a socket served at ``host``."""
        if not self.allows_host(host):
            return False
        if self.any_origin:
            return True
        key = _origin_key(origin)
        if key is None:
            return False
        if self.derived:
            return validate_host(key[1], self.named_hosts)
        return key in self.origins or self._same_origin(key, host)

    def trusts(self, origin: str, host: str | None = None) -> bool:
        """Return whether a page at ``origin`` may act as the visitor (use the session cookie).

        With ``"*"`` any page may listen to public channels, but only a same-origin page may
        make calls as the visitor; otherwise every allowed origin is trusted.
        """
        if not self.any_origin:
            return True
        key = _origin_key(origin)
        return key is not None and self._same_origin(key, host)

    def _same_origin(self, key: tuple[str, str, int], host: str | None) -> bool:
        # The page is on the socket's own host and port, and that host is named in
        # ALLOWED_HOSTS (so a rebinding page, whose Host is its own name, is not).
        if not host:
            return False
        scheme, domain, port = key
        own_domain, own_port = split_domain_port(host.lower())
        default_port = 443 if scheme == "https" else 80
        if own_domain != domain or (int(own_port) if own_port else default_port) != port:
            return False
        return self.valid_hosts is None or validate_host(own_domain, self.named_hosts)


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
