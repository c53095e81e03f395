"""The only reader of ``django.conf.settings``: every ``RTBRIDGE_*`` setting and its default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["BACKEND_ALIASES", "DEFAULTS", "get_setting", "resolve_backend_path"]

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
