"""The only reader of ``django.conf.settings``: every ``RTBRIDGE_*`` setting and its default."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "BACKEND_ALIASES",
    "DEFAULTS",
    "HISTORY_DEFAULTS",
    "HISTORY_STORES",
    "REDIS_DEFAULTS",
    "SERVER_DEFAULTS",
    "HistorySettings",
    "debug_enabled",
    "get_setting",
    "history",
    "join_socket_url",
    "origin_settings",
    "project_identity",
    "public_socket_url",
    "redis_settings",
    "resolve_backend_path",
    "server_settings",
    "session_settings",
    "token_ttl",
]

#: Seconds a subscription token is valid unless ``RTBRIDGE_TOKEN_TTL`` says otherwise.
DEFAULT_TOKEN_TTL = 3600
#: Names of the log formats the server can write (``RTBRIDGE_SERVER['log_format']``).
LOG_FORMATS = ("text", "json")

BACKEND_ALIASES: dict[str, str] = {
    "local": "rtbridge.backends.local.LocalBackend",
    "redis": "rtbridge.backends.redis.RedisBackend",
    "pusher": "rtbridge.backends.pusher.PusherBackend",
    "pubnub": "rtbridge.backends.pubnub.PubNubBackend",
    "firebase": "rtbridge.backends.firebase.FirebaseBackend",
    "locmem": "rtbridge.backends.locmem.LocMemBackend",
    "dummy": "rtbridge.backends.dummy.DummyBackend",
    "console": "rtbridge.backends.console.ConsoleBackend",
}

# Every setting rtbridge reads, with its default. Documented in docs/settings.md.
DEFAULTS: dict[str, Any] = {
    # The transport: an alias from BACKEND_ALIASES or a dotted path to a backend class.
    "RTBRIDGE_BACKEND": "local",
    # Keyword options of the backend's constructor.
    "RTBRIDGE_OPTIONS": {},
    # Origins allowed to open a socket to the rtbridge server; None derives them from
    # ALLOWED_HOSTS.
    "RTBRIDGE_ALLOWED_ORIGINS": None,
    # Limits and options of the self-hosted server (rtbridge.server); missing keys take
    # their value from SERVER_DEFAULTS. Documented in docs/server.md.
    "RTBRIDGE_SERVER": {},
    # Seconds a signed subscription token is accepted after it was issued (docs/auth.md).
    "RTBRIDGE_TOKEN_TTL": DEFAULT_TOKEN_TTL,
    # Message positions and history (docs/delivery.md); missing keys take their value from
    # HISTORY_DEFAULTS, and None or {"enabled": False} turns history off.
    "RTBRIDGE_HISTORY": {},
    # Where the "redis" history store of the hosted backends connects; missing keys take
    # their value from REDIS_DEFAULTS.
    "RTBRIDGE_REDIS": {},
}

# Keys of RTBRIDGE_REDIS and their defaults (docs/settings.md).
REDIS_DEFAULTS: dict[str, Any] = {
    "url": "redis://127.0.0.1:6379/0",
    "prefix": "rtbridge:",
    "socket_timeout": 5.0,
    "socket_connect_timeout": 2.0,
}

# Keys of RTBRIDGE_REDIS that say where Redis is besides "url" (no default; validated by
# rtbridge.redis_target.from_options, the same rules as the redis backend's options).
REDIS_TARGET_KEYS = ("sentinel", "cluster", "failover_wait")

# Keys of RTBRIDGE_HISTORY and their defaults (docs/settings.md explains each one).
HISTORY_DEFAULTS: dict[str, Any] = {
    "enabled": True,
    # Messages kept per channel.
    "size": 1000,
    # Seconds a message is kept; a channel's position expires after this long without a
    # publish (its epoch changes with it, so clients know they must refetch).
    "ttl": 600.0,
    # Where Django keeps positions and history for the hosted backends (Pusher, PubNub,
    # Firebase): "database" (a table of the rtbridge app), "redis", or a dotted path.
    "store": "database",
}

#: Aliases of ``RTBRIDGE_HISTORY["store"]`` and the history store classes they name.
HISTORY_STORES: dict[str, str] = {
    "database": "rtbridge.history_db.DatabaseHistoryStore",
    "redis": "rtbridge.history_redis.RedisHistoryStore",
}

# Keys of RTBRIDGE_SERVER and their defaults (docs/server.md explains each one).
SERVER_DEFAULTS: dict[str, Any] = {
    "path": "/rtbridge/ws",
    "public_url": None,
    "heartbeat": 25.0,
    "idle_timeout": 60.0,
    "max_frame_bytes": 64 * 1024,
    "max_subscriptions": 500,
    "max_connections": 20000,
    "max_buffer_bytes": 1024 * 1024,
    "abuse_threshold": 10,
    "reconnect_max_delay": 5.0,
    "stats_interval": 60.0,
    "wsgi_threads": 16,
    "serve_static": None,
    # The event loop a node makes for itself: "asyncio", or "uvloop" (pip install
    # 'rtbridge[uvloop]'), measured at 3-8 % less CPU per delivery (benchmarks/RESULTS.md).
    "event_loop": "asyncio",
    # Protected channels, presence, whispers and socket calls (docs/server.md).
    "presence_ttl": 15.0,
    "whisper_rate": 10,
    "call_rate": 20,
    "call_threads": 8,
    # Hostile input: the deepest JSON nesting a client frame may have.
    "max_json_depth": 32,
    # permessage-deflate (RFC 7692) offered to clients; off by default (memory per socket).
    "compression": False,
    # Operators (docs/server.md): probes, metrics, logs and proxies. None turns a path off.
    "health_path": "/healthz",
    "ready_path": "/readyz",
    "metrics_path": "/metrics",
    "log_format": "text",
    # Addresses or networks whose X-Forwarded-For / X-Real-IP are believed (none by default).
    "trusted_proxies": [],
}


def get_setting(name: str) -> Any:
    """Return the value of an ``RTBRIDGE_*`` setting, or its default."""
    if name not in DEFAULTS:
        raise KeyError(f"{name} is not an rtbridge setting; known: {', '.join(sorted(DEFAULTS))}")
    return getattr(settings, name, DEFAULTS[name])


def resolve_backend_path(value: object | None = None) -> str:
    """Return the dotted path ``RTBRIDGE_BACKEND`` (or ``value``) names.

    Raises ``ImproperlyConfigured`` naming the value and the allowed aliases.
    """
    if value is None:
        value = get_setting("RTBRIDGE_BACKEND")
    if not isinstance(value, str) or not value:
        raise ImproperlyConfigured(
            f"RTBRIDGE_BACKEND={value!r} is not valid; give one of "
            f"{', '.join(repr(a) for a in BACKEND_ALIASES)} or a dotted path to a backend class."
        )
    if value in BACKEND_ALIASES:
        return BACKEND_ALIASES[value]
    if "." not in value:
        raise ImproperlyConfigured(
            f"RTBRIDGE_BACKEND={value!r} is not a known alias; give one of "
            f"{', '.join(repr(a) for a in BACKEND_ALIASES)} or a dotted path to a backend class."
        )
    return value


def backend_options() -> dict[str, Any]:
    """Return a copy of ``RTBRIDGE_OPTIONS`` after checking it is a mapping with string keys."""
    options = get_setting("RTBRIDGE_OPTIONS")
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ImproperlyConfigured(
            f"RTBRIDGE_OPTIONS must be a dict of the backend's keyword options, "
            f"not {type(options).__name__}."
        )
    bad = [key for key in options if not isinstance(key, str)]
    if bad:
        raise ImproperlyConfigured(f"RTBRIDGE_OPTIONS keys must be strings; got {bad!r}.")
    return dict(options)


def server_settings(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return ``RTBRIDGE_SERVER`` merged over ``SERVER_DEFAULTS`` (and ``overrides`` over both).

    Raises ``ImproperlyConfigured`` naming an unknown key or a value of the wrong type.
    Without configured Django settings, only the defaults and ``overrides`` apply.
    """
    merged = dict(SERVER_DEFAULTS)
    configured = get_setting("RTBRIDGE_SERVER") if settings.configured else {}
    for source, label in ((configured, "RTBRIDGE_SERVER"), (overrides or {}, "server options")):
        if not isinstance(source, Mapping):
            raise ImproperlyConfigured(
                f"{label} must be a dict of server options, not {type(source).__name__}."
            )
        _check_keys(label, source, sorted(SERVER_DEFAULTS))
        merged.update(source)
    for key in (
        "heartbeat",
        "idle_timeout",
        "reconnect_max_delay",
        "stats_interval",
        "presence_ttl",
    ):
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ImproperlyConfigured(
                f"RTBRIDGE_SERVER[{key!r}]={value!r} is not valid; give seconds as a number >= 0."
            )
    for key in (
        "max_frame_bytes",
        "max_subscriptions",
        "max_connections",
        "max_buffer_bytes",
        "abuse_threshold",
        "wsgi_threads",
        "whisper_rate",
        "call_rate",
        "call_threads",
        "max_json_depth",
    ):
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ImproperlyConfigured(
                f"RTBRIDGE_SERVER[{key!r}]={value!r} is not valid; give an integer >= 1."
            )
    if merged["event_loop"] not in ("asyncio", "uvloop"):
        raise ImproperlyConfigured(
            f"RTBRIDGE_SERVER['event_loop']={merged['event_loop']!r} is not valid; give "
            "'asyncio' (the default) or 'uvloop' (pip install 'rtbridge[uvloop]')."
        )
    if merged["heartbeat"] <= 0 or merged["idle_timeout"] <= merged["heartbeat"]:
        raise ImproperlyConfigured(
            f"RTBRIDGE_SERVER heartbeat={merged['heartbeat']!r} and idle_timeout="
            f"{merged['idle_timeout']!r} are not valid; clients answer each heartbeat, so "
            "idle_timeout must be longer than heartbeat (defaults: 25 and 60), and both > 0."
        )
    if not 0 < merged["presence_ttl"] <= 20:
        raise ImproperlyConfigured(
            f"RTBRIDGE_SERVER['presence_ttl']={merged['presence_ttl']!r} is not valid; give "
            "seconds > 0 and <= 20 (a dead node's members leave within 1.5 x presence_ttl, "
            "and the documented bound is 30 s; default 15)."
        )
    path = merged["path"]
    if not isinstance(path, str) or not path.startswith("/"):
        raise ImproperlyConfigured(
            f"RTBRIDGE_SERVER['path']={path!r} is not valid; give a URL path starting with '/'."
        )
    public_url = merged["public_url"]
    if public_url is not None and not (
        isinstance(public_url, str) and public_url.startswith(("ws://", "wss://"))
    ):
        raise ImproperlyConfigured(
            f"RTBRIDGE_SERVER['public_url']={public_url!r} is not valid; give None (the page's "
            "own host) or a ws:// or wss:// URL such as 'wss://rt.example.com'."
        )
    for key in ("health_path", "ready_path", "metrics_path"):
        value = merged[key]
        if value is not None and not (isinstance(value, str) and value.startswith("/")):
            raise ImproperlyConfigured(
                f"RTBRIDGE_SERVER[{key!r}]={value!r} is not valid; give a URL path starting "
                "with '/', or None to turn it off."
            )
    paths = [merged[key] for key in ("path", "health_path", "ready_path", "metrics_path")]
    taken = [p for p in paths if p is not None]
    if len(set(taken)) != len(taken):
        raise ImproperlyConfigured(
            f"RTBRIDGE_SERVER paths {taken!r} are not valid; path, health_path, ready_path "
            "and metrics_path must differ."
        )
    if merged["log_format"] not in LOG_FORMATS:
        raise ImproperlyConfigured(
            f"RTBRIDGE_SERVER['log_format']={merged['log_format']!r} is not valid; give "
            f"{' or '.join(repr(f) for f in LOG_FORMATS)}."
        )
    if not isinstance(merged["compression"], bool):
        raise ImproperlyConfigured(
            f"RTBRIDGE_SERVER['compression']={merged['compression']!r} is not valid; give "
            "True (offer permessage-deflate) or False (the default)."
        )
    proxies = merged["trusted_proxies"]
    if isinstance(proxies, str) or not isinstance(proxies, (list, tuple)):
        raise ImproperlyConfigured(
            f"RTBRIDGE_SERVER['trusted_proxies']={proxies!r} is not valid; give a list of "
            "proxy addresses or networks, e.g. ['127.0.0.1', '10.0.0.0/8'] (default: none)."
        )
    if merged["serve_static"] not in (None, True, False):
        raise ImproperlyConfigured(
            f"RTBRIDGE_SERVER['serve_static']={merged['serve_static']!r} is not valid; give "
            "None (serve static files when DEBUG), True or False."
        )
    return merged


def join_socket_url(base: str, path: str) -> str:
    """Return the socket URL for ``public_url`` ``base`` and the socket ``path``.

    ``base`` is a base URL (``wss://rt.example.com``, or ``wss://example.com/rt`` behind a
    proxy that mounts the server under ``/rt``), so ``path`` is appended to its path; a URL
    that already ends with ``path`` (the full socket URL) is returned as it is.
    """
    parts = urlsplit(base)
    own_path = parts.path.rstrip("/")
    if own_path.endswith(path.rstrip("/")):
        return base
    return urlunsplit(parts._replace(path=own_path + path))


def public_socket_url() -> str | None:
    """Return the socket URL pages connect to (``public_url`` + ``path``), or ``None``.

    ``None`` (no ``public_url``) means "the page's own host", which the JS client resolves.
    """
    server = server_settings()
    if server["public_url"] is None:
        return None
    return join_socket_url(server["public_url"], server["path"])


def project_identity() -> str:
    """Return what tells this Django project apart from others on the machine.

    The settings module and the project's directory (``BASE_DIR``, else the settings
    module's folder, else the working directory): two checkouts of one project, or two
    projects with a ``mysite.settings`` each, get different identities.
    """
    module = getattr(settings, "SETTINGS_MODULE", None) or ""
    base_dir = getattr(settings, "BASE_DIR", None)
    if base_dir is None:
        loaded = sys.modules.get(module)
        settings_file = getattr(loaded, "__file__", None)
        base_dir = os.path.dirname(settings_file) if settings_file else os.getcwd()
    return f"{module}\0{os.path.realpath(os.fspath(base_dir))}"


def origin_settings() -> tuple[Any, list[str] | None, bool]:
    """Return ``(RTBRIDGE_ALLOWED_ORIGINS, ALLOWED_HOSTS, DEBUG)`` for the server's Origin check.

    Without configured Django settings (a server embedded without a project) there are no
    ``ALLOWED_HOSTS``: ``(None, None, False)``.
    """
    if not settings.configured:
        return None, None, False
    return (
        get_setting("RTBRIDGE_ALLOWED_ORIGINS"),
        list(getattr(settings, "ALLOWED_HOSTS", [])),
        bool(getattr(settings, "DEBUG", False)),
    )


def debug_enabled() -> bool:
    """Return Django's ``DEBUG`` setting (the server serves static files when it is on)."""
    return bool(getattr(settings, "DEBUG", False))


def session_settings() -> tuple[str, str | None]:
    """Return ``(SESSION_COOKIE_NAME, SESSION_ENGINE)`` for socket calls.

    The engine is ``None`` when ``django.contrib.sessions`` or ``django.contrib.auth`` is not
    installed: socket calls then run as the anonymous user.
    """
    from django.apps import apps

    if not settings.configured or not apps.ready:
        return "sessionid", None  # a server embedded without a Django project
    cookie = getattr(settings, "SESSION_COOKIE_NAME", "sessionid")
    installed = apps.is_installed("django.contrib.sessions") and apps.is_installed(
        "django.contrib.auth"
    )
    engine = getattr(settings, "SESSION_ENGINE", "django.contrib.sessions.backends.db")
    return cookie, engine if installed else None


@dataclass(frozen=True, slots=True)
class HistorySettings:
    """``RTBRIDGE_HISTORY`` after validation (see :func:`history`)."""

    enabled: bool
    size: int
    ttl: float
    store: str


def history() -> HistorySettings:
    """Return ``RTBRIDGE_HISTORY`` merged over ``HISTORY_DEFAULTS``, validated.

    ``RTBRIDGE_HISTORY = None`` is the same as ``{"enabled": False}``: positions may still be
    assigned where that is cheap, but every resume answers ``recovered: false``. Raises
    ``ImproperlyConfigured`` naming an unknown key or a bad value.
    """
    configured = get_setting("RTBRIDGE_HISTORY") if settings.configured else {}
    if configured is None:
        configured = {"enabled": False}
    if not isinstance(configured, Mapping):
        raise ImproperlyConfigured(
            f"RTBRIDGE_HISTORY must be a dict (keys: {', '.join(HISTORY_DEFAULTS)}) or None, "
            f"not {type(configured).__name__}."
        )
    _check_keys("RTBRIDGE_HISTORY", configured, list(HISTORY_DEFAULTS))
    merged = {**HISTORY_DEFAULTS, **configured}
    enabled, size, ttl, store = merged["enabled"], merged["size"], merged["ttl"], merged["store"]
    if not isinstance(enabled, bool):
        raise ImproperlyConfigured(
            f"RTBRIDGE_HISTORY['enabled']={enabled!r} is not valid; give True or False."
        )
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ImproperlyConfigured(
            f"RTBRIDGE_HISTORY['size']={size!r} is not valid; give the number of messages "
            "kept per channel as an integer >= 1 (default 1000)."
        )
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise ImproperlyConfigured(
            f"RTBRIDGE_HISTORY['ttl']={ttl!r} is not valid; give the seconds a message is "
            "kept as a number > 0 (default 600)."
        )
    if not isinstance(store, str) or not (store in HISTORY_STORES or "." in store):
        raise ImproperlyConfigured(
            f"RTBRIDGE_HISTORY['store']={store!r} is not valid; give "
            f"{' or '.join(repr(name) for name in HISTORY_STORES)} or the dotted path of a "
            "history store class."
        )
    return HistorySettings(enabled=enabled, size=size, ttl=float(ttl), store=store)


def _check_keys(label: str, given: Mapping[str, Any], known: list[str]) -> None:
    """Raise ``ImproperlyConfigured`` naming the first key of ``given`` not in ``known``."""
    for key in given:
        if key not in known:
            raise ImproperlyConfigured(
                f"{label} has unknown key {key!r}; known keys: {', '.join(known)}."
            )


def redis_settings() -> dict[str, Any]:
    """Return ``RTBRIDGE_REDIS`` merged over ``REDIS_DEFAULTS``, validated.

    Read by the hosted backends' ``"redis"`` history store (the ``redis`` backend and the
    server take their Redis from ``RTBRIDGE_OPTIONS``). ``sentinel``, ``cluster`` and
    ``failover_wait`` are passed through (the store checks them with
    ``rtbridge.redis_target.from_options``; ``url`` is dropped when one of the first two is
    given without it). Raises ``ImproperlyConfigured``
    naming an unknown key or a bad value.
    """
    configured = get_setting("RTBRIDGE_REDIS") if settings.configured else {}
    if not isinstance(configured, Mapping):
        raise ImproperlyConfigured(
            f"RTBRIDGE_REDIS must be a dict (keys: {', '.join(REDIS_DEFAULTS)}), not "
            f"{type(configured).__name__}."
        )
    _check_keys("RTBRIDGE_REDIS", configured, [*REDIS_DEFAULTS, *REDIS_TARGET_KEYS])
    merged = {**REDIS_DEFAULTS, **configured}
    if "url" not in configured and ("sentinel" in configured or "cluster" in configured):
        # The default URL is for one Redis; rtbridge.redis_target checks the one given.
        del merged["url"]
    url, prefix = merged.get("url"), merged["prefix"]
    if "url" in merged and (
        not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://"))
    ):
        raise ImproperlyConfigured(
            f"RTBRIDGE_REDIS['url']={url!r} is not a Redis URL; give e.g. "
            f"{REDIS_DEFAULTS['url']!r}."
        )
    if not isinstance(prefix, str):
        raise ImproperlyConfigured(
            f"RTBRIDGE_REDIS['prefix']={prefix!r} is not a string; give e.g. 'rtbridge:'."
        )
    for key in ("socket_timeout", "socket_connect_timeout"):
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ImproperlyConfigured(
                f"RTBRIDGE_REDIS[{key!r}]={value!r} is not valid; give seconds > 0."
            )
    return merged


def token_ttl() -> int:
    """Return ``RTBRIDGE_TOKEN_TTL``: seconds a subscription token is valid (default 3600).

    Raises ``ImproperlyConfigured`` naming a value that is not a whole number >= 1. Without
    configured Django settings, the default.
    """
    if not settings.configured:
        return DEFAULT_TOKEN_TTL
    value = get_setting("RTBRIDGE_TOKEN_TTL")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(
            f"RTBRIDGE_TOKEN_TTL={value!r} is not valid; give the seconds a subscription token "
            f"stays valid as a whole number >= 1 (default {DEFAULT_TOKEN_TTL})."
        )
    return value
