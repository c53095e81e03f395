"""Logical channel names: the rules, the model channel builders and per-transport encodings.

The logical scheme (see ``docs/channels.md``):

* collection channel  ``<app_label>.<model_name>``            e.g. ``todo.todoitem``
* object channel      ``<app_label>.<model_name>.<pk>``       e.g. ``todo.todoitem.5``
* filter channel      ``<collection>;<field>=<value>[;...]``  e.g. ``todo.todoitem;todo_list_id=1``
  (keys sorted, so the same filter always gives the same name)
* ``private-`` and ``presence-`` prefixes mark protected channels (authorized by Django).

A logical name uses only ``A-Z a-z 0-9 _ - . ; = @`` and is at most 200 characters long.
Every transport maps a logical name to its own alphabet with the ``encode_for_*`` functions;
``tests/vectors/channel_names.json`` holds vectors that the JavaScript client checks too.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from .exceptions import InvalidChannelName

__all__ = [
    "MAX_CHANNEL_LENGTH",
    "PRESENCE_PREFIX",
    "PRIVATE_PREFIX",
    "collection_channel",
    "decode_filter_value",
    "encode_filter_value",
    "encode_for_firebase",
    "encode_for_pubnub",
    "encode_for_pusher",
    "filter_channel",
    "is_protected",
    "normalize_filter_key",
    "object_channel",
    "parse_filter_channel",
    "validate_channel",
]

MAX_CHANNEL_LENGTH = 200
PRIVATE_PREFIX = "private-"
PRESENCE_PREFIX = "presence-"
CHANNEL_ALPHABET = "A-Z a-z 0-9 _ - . ; = @"
_CHANNEL_RE = re.compile(r"[A-Za-z0-9_\-.;=@]+")
_BASE_RE = re.compile(r"[a-z0-9_\-]+(\.[a-z0-9_\-]+)*")
_FILTER_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Filter values written verbatim; everything else is base64url-encoded behind "@".
_PLAIN_VALUE_RE = re.compile(r"[A-Za-z0-9_\-]+")

PUSHER_MAX_LENGTH = 164
PUBNUB_MAX_LENGTH = 92
# Separators that never occur in a logical name, so an encoded name cannot collide with
# the encoding of another logical name.
_PUSHER_HASH_MARK = ","
_PUBNUB_HASH_MARK = "!"
_DOT_REPLACEMENT = "~"


def validate_channel(name: object) -> str:
    """Return ``name`` if it is a valid logical channel name, else raise ``InvalidChannelName``."""
    if not isinstance(name, str):
        raise InvalidChannelName(
            f"Channel name {name!r} is a {type(name).__name__}; channel names are strings."
        )
    if not name:
        raise InvalidChannelName("Channel name is empty; give at least one character.")
    if len(name) > MAX_CHANNEL_LENGTH:
        raise InvalidChannelName(
            f"Channel name {name[:40]!r}... is {len(name)} characters long; "
            f"the limit is {MAX_CHANNEL_LENGTH}."
        )
    if not _CHANNEL_RE.fullmatch(name):
        bad = sorted({ch for ch in name if not _CHANNEL_RE.fullmatch(ch)})
        raise InvalidChannelName(
            f"Channel name {name!r} contains {''.join(bad)!r}; "
            f"allowed characters are {CHANNEL_ALPHABET}."
        )
    return name


def is_protected(name: str) -> bool:
    """Say whether ``name`` is a private or presence channel."""
    return name.startswith((PRIVATE_PREFIX, PRESENCE_PREFIX))


def normalize_filter_key(key: str) -> str:
    """Return the canonical filter key (SwampDragon's ``todo_list__id`` → ``todo_list_id``)."""
    if not isinstance(key, str) or not key:
        raise InvalidChannelName(f"Filter key {key!r} must be a non-empty string.")
    if key.endswith("__id") or key.endswith("__pk"):
        key = key[:-4] + "_id"
    if "__" in key or not _FILTER_KEY_RE.fullmatch(key):
        raise InvalidChannelName(
            f"Filter key {key!r} is not allowed; filters are equality filters on one field, "
            "written as a Python identifier such as 'todo_list_id' (or 'todo_list__id')."
        )
    return key


def encode_filter_value(value: Any) -> str:
    """Encode one filter (or primary key) value for use in a channel name.

    ``int``, ``bool``, ``None``, ``UUID`` and ``Decimal`` have a canonical text form; strings of
    ``A-Z a-z 0-9 _ -`` are written as they are; any other string becomes ``@`` followed by
    its UTF-8 bytes in unpadded base64url. So ``1`` and ``"1"`` give the same name, on purpose:
    Django's ``filter(todo_list_id="1")`` matches the same rows as ``filter(todo_list_id=1)``.
    """
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise InvalidChannelName(f"Filter value {value!r} is not a finite number.")
        return format(value.normalize(), "f")
    if isinstance(value, str):
        if _PLAIN_VALUE_RE.fullmatch(value):
            return value
        raw = base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii").rstrip("=")
        return "@" + raw
    raise InvalidChannelName(
        f"Filter value {value!r} has type {type(value).__name__}; allowed types are "
        "str, int, bool, None, UUID and Decimal."
    )


def decode_filter_value(text: str) -> str:
    """Return the text a filter value encodes (``@``-encoded strings are decoded)."""
    if text.startswith("@"):
        padded = text[1:] + "=" * (-len(text[1:]) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    return text


def _model_base(model_or_label: Any) -> str:
    if isinstance(model_or_label, str):
        base = model_or_label.lower()
    else:
        meta = model_or_label._meta
        base = f"{meta.app_label}.{meta.model_name}".lower()
    if not _BASE_RE.fullmatch(base):
        raise InvalidChannelName(
            f"Channel base {base!r} is not allowed; use lower-case letters, digits, '_' and '-' "
            "in dot-separated parts, such as 'todo.todoitem'."
        )
    return base


def collection_channel(model_or_label: Any) -> str:
    """Return the collection channel of a model (or of a label such as ``"todo.todoitem"``)."""
    return validate_channel(_model_base(model_or_label))


def object_channel(model_or_label: Any, pk: Any) -> str:
    """Return the channel of one object, e.g. ``todo.todoitem.5``."""
    value = encode_filter_value(pk)
    return validate_channel(f"{_model_base(model_or_label)}.{value}")


def filter_channel(model_or_label: Any, filters: Mapping[str, Any]) -> str:
    """Return the channel of a filter, e.g. ``todo.todoitem;todo_list_id=1`` (keys sorted).

    An empty filter gives the collection channel.
    """
    base = _model_base(model_or_label)
    pairs: dict[str, str] = {}
    for key, value in filters.items():
        canonical = normalize_filter_key(key)
        if canonical in pairs:
            raise InvalidChannelName(
                f"Filter key {key!r} repeats {canonical!r}; give each field once."
            )
        pairs[canonical] = encode_filter_value(value)
    if not pairs:
        return validate_channel(base)
    suffix = ";".join(f"{key}={pairs[key]}" for key in sorted(pairs))
    return validate_channel(f"{base};{suffix}")


def parse_filter_channel(name: str) -> tuple[str, dict[str, str]]:
    """Split a filter channel into its base and its ``{key: encoded value}`` pairs."""
    validate_channel(name)
    base, *parts = name.split(";")
    filters: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not _FILTER_KEY_RE.fullmatch(key) or not value:
            raise InvalidChannelName(
                f"Channel {name!r} has a malformed filter part {part!r}; expected 'key=value'."
            )
        filters[key] = value
    return base, filters


def _digest(name: str, length: int) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:length]


def encode_for_pusher(name: str) -> str:
    """Map a logical name to a Pusher channel name (``[-a-zA-Z0-9_=@,.;]``, ≤164 characters).

    The logical alphabet is a subset of Pusher's, so names are kept as they are; a name that
    is too long keeps its first 131 characters, then ``,`` and 32 hex digits of its SHA-256.
    """
    validate_channel(name)
    if len(name) <= PUSHER_MAX_LENGTH:
        return name
    return f"{name[:131]}{_PUSHER_HASH_MARK}{_digest(name, 32)}"


def encode_for_pubnub(name: str) -> str:
    """Map a logical name to a PubNub channel name (≤92 characters, no ``. , : * / \\``).

    ``.`` becomes ``~`` (never part of a logical name, so the mapping is reversible); a name
    still longer than 92 characters keeps its first 59 characters, then ``!`` and 32 hex digits
    of the SHA-256 of the logical name.
    """
    validate_channel(name)
    encoded = name.replace(".", _DOT_REPLACEMENT)
    if len(encoded) <= PUBNUB_MAX_LENGTH:
        return encoded
    return f"{encoded[:59]}{_PUBNUB_HASH_MARK}{_digest(name, 32)}"


def encode_for_firebase(name: str) -> str:
    """Map a logical name to a Realtime Database key (no ``. $ # [ ] /``): ``.`` becomes ``~``."""
    validate_channel(name)
    return name.replace(".", _DOT_REPLACEMENT)


def channels_arg(channels: str | Iterable[str]) -> tuple[str, ...]:
    """Normalize the ``channels`` argument of ``publish`` to a de-duplicated tuple."""
    if isinstance(channels, str):
        return (validate_channel(channels),)
    try:
        items = list(channels)
    except TypeError:
        raise InvalidChannelName(
            f"Channels {channels!r} must be a channel name or an iterable of channel names."
        ) from None
    if not items:
        raise InvalidChannelName("No channel given; pass a channel name or a non-empty list.")
    return tuple(dict.fromkeys(validate_channel(item) for item in items))
