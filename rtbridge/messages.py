"""The frozen ``Message`` envelope: validated once, before any backend sees it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from django.core.serializers.json import DjangoJSONEncoder

from .channel_names import channels_arg
from .exceptions import InvalidEventName, InvalidMessage, PayloadTooLarge

__all__ = ["MAX_EVENT_LENGTH", "Message", "encode_json", "is_socket_id"]

MAX_EVENT_LENGTH = 64
_EVENT_RE = re.compile(r"[A-Za-z0-9_\-.]+")
_SOCKET_ID_RE = re.compile(r"[A-Za-z0-9_\-.:]{1,100}")
#: What :func:`is_socket_id` accepts, for error messages.
SOCKET_ID_RULE = "1-100 characters of A-Z a-z 0-9 _ - . :"
# Client events (whispers) are sent by browsers only; the server never publishes them.
RESERVED_EVENT_PREFIXES = ("client-",)

_encoder = DjangoJSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_json(value: Any) -> str:
    """Encode ``value`` as compact JSON, allowing Django's types (datetime, Decimal, UUID, ...)."""
    return _encoder.encode(value)


def is_socket_id(value: object) -> TypeGuard[str]:
    """Return whether ``value`` can be a socket id on any transport (see ``SOCKET_ID_RULE``)."""
    return isinstance(value, str) and _SOCKET_ID_RE.fullmatch(value) is not None


def validate_event(event: object) -> str:
    """Return ``event`` if it is a valid event name, else raise ``InvalidEventName``."""
    if not isinstance(event, str):
        raise InvalidEventName(
            f"Event name {event!r} is a {type(event).__name__}; event names are strings."
        )
    if not 0 < len(event) <= MAX_EVENT_LENGTH:
        raise InvalidEventName(
            f"Event name {event[:80]!r} is {len(event)} characters long; "
            f"give 1 to {MAX_EVENT_LENGTH} characters."
        )
    if not _EVENT_RE.fullmatch(event):
        raise InvalidEventName(f"Event name {event!r} is not allowed; use A-Z a-z 0-9 _ - . only.")
    if event.startswith(RESERVED_EVENT_PREFIXES):
        raise InvalidEventName(
            f"Event name {event!r} starts with a reserved prefix "
            f"({', '.join(RESERVED_EVENT_PREFIXES)}); those are for client events."
        )
    return event


@dataclass(frozen=True, slots=True)
class Message:
    """One event on one or more channels.

    ``Message(channels, event, data, exclude=None, max_bytes=None)`` validates everything
    once: channel names (see :mod:`rtbridge.channel_names`), the event name, that ``data`` can
    be encoded as JSON, and, when ``max_bytes`` is given, the size of that JSON. ``payload``
    holds the JSON text of ``data``; backends send it as it is, so encoding happens once.
    """

    channels: tuple[str, ...]
    event: str
    data: Any = None
    exclude: str | None = None
    payload: str = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        channels: str | Iterable[str],
        event: str,
        data: Any = None,
        exclude: str | None = None,
        max_bytes: int | None = None,
    ) -> None:
        object.__setattr__(self, "channels", channels_arg(channels))
        object.__setattr__(self, "event", validate_event(event))
        if exclude is not None and not is_socket_id(exclude):
            raise InvalidMessage(
                f"exclude={exclude!r} is not a socket id; socket ids are {SOCKET_ID_RULE}"
            )
        object.__setattr__(self, "exclude", exclude)
        try:
            payload = encode_json(data)
        except (TypeError, ValueError) as exc:
            raise InvalidMessage(
                f"Data for event {event!r} cannot be encoded as JSON: {exc}. Allowed are "
                "dict, list, str, int, float (finite), bool, None and Django's datetime, "
                "date, time, timedelta, Decimal, UUID and lazy strings."
            ) from None
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "payload", payload)
        if max_bytes is not None:
            self.check_size(max_bytes)

    @property
    def size(self) -> int:
        """Return the size of the JSON payload in bytes (UTF-8)."""
        return len(self.payload.encode("utf-8"))

    def check_size(self, max_bytes: int) -> None:
        """Raise ``PayloadTooLarge`` if the payload is larger than ``max_bytes``."""
        # Fast path: a str's length bounds its UTF-8 size from below and from above (x4).
        if len(self.payload) * 4 <= max_bytes:
            return
        size = self.size
        if size > max_bytes:
            raise PayloadTooLarge(
                f"Data for event {self.event!r} on {', '.join(self.channels)} is {size} bytes "
                f"as JSON; the active backend accepts at most {max_bytes} bytes. Publish less "
                "(an id the client can fetch) or choose a backend with a larger limit.",
                size=size,
                limit=max_bytes,
            )

    def as_received(self) -> Message:
        """Return a deep copy whose ``data`` is decoded from the payload, as a client gets it.

        Datetimes, Decimals and UUIDs appear as the strings the JSON carries, and no later
        change to the caller's objects can reach the copy.
        """
        copy = object.__new__(Message)
        for name in ("channels", "event", "exclude", "payload"):
            object.__setattr__(copy, name, getattr(self, name))
        object.__setattr__(copy, "data", json.loads(self.payload))
        return copy
