"""The Redis wire format shared by the ``redis`` backend and the server nodes: keys and bodies.

Everything one side writes and the other reads lives here, so the two cannot drift apart
(docs/server.md, "Redis message format" and "Presence in Redis"). With ``P`` the prefix:

* ``P<channel>`` (pub/sub): message bodies, ``rtb1\\n<event>\\n<exclude>\\n<payload>``, and
  whisper bodies, ``rtw1\\n<event>\\n<sender>\\n<user id>\\n<data JSON>``.
* ``P!node`` (pub/sub): control bodies, ``rtc1\\n<compact JSON>``: a revocation
  ``{"t":"revoke","u","c","at"}`` or a presence change ``{"t":"presence","c","a","v","m"}``
  (written by the server's Lua scripts with :data:`LUA_PUBLISH_PRESENCE`).
* ``Prevoked:<channel>|<user id>`` (string): when the user lost access, as Unix time.
* ``Ppresence:<channel>`` (hash) and ``Ppresence-nodes`` (sorted set): presence entries.

Imports no Redis client and nothing above the core, so both sides (and tests) can use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .exceptions import ImproperlyConfigured
from .messages import Message

__all__ = [
    "BODY_VERSION",
    "CONTROL_VERSION",
    "DEFAULT_PREFIX",
    "DEFAULT_URL",
    "LUA_PUBLISH_PRESENCE",
    "URL_SCHEMES",
    "WHISPER_VERSION",
    "PresenceChange",
    "Revocation",
    "Whisper",
    "channel_key",
    "check_prefix",
    "check_url",
    "control_channel",
    "decode_body",
    "decode_control",
    "decode_whisper",
    "encode_control",
    "encode_message",
    "encode_revocation",
    "encode_whisper",
    "entry_field",
    "is_whisper",
    "presence_key",
    "presence_nodes_key",
    "revocation_key",
    "safe_url",
]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "rtbridge:"
URL_SCHEMES = ("redis://", "rediss://", "unix://")
#: First line of every message body; a server drops bodies with another version.
BODY_VERSION = b"rtb1"
#: First line of a whisper body on a channel's Redis channel.
WHISPER_VERSION = b"rtw1"
#: First line of a control body (presence events, revocations) on ``<prefix>!node``.
CONTROL_VERSION = b"rtc1"

_WHISPER_HEAD = WHISPER_VERSION + b"\n"
_CONTROL_HEAD = CONTROL_VERSION + b"\n"


# Options --------------------------------------------------------------------------------------


def check_url(url: object, source: str) -> str:
    """Return ``url`` if it is a Redis URL; else raise ``ImproperlyConfigured`` naming it."""
    if not isinstance(url, str) or not url.startswith(URL_SCHEMES):
        raise ImproperlyConfigured(
            f"{source}={url!r} is not a Redis URL; give e.g. {DEFAULT_URL!r}."
        )
    return url


def check_prefix(prefix: object, source: str) -> str:
    """Return ``prefix`` if it is a string; else raise ``ImproperlyConfigured`` naming it."""
    if not isinstance(prefix, str):
        raise ImproperlyConfigured(
            f"{source}={prefix!r} is not a string; give e.g. {DEFAULT_PREFIX!r}."
        )
    return prefix


def safe_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for error messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        return "<unparsable Redis URL>"


# Keys -----------------------------------------------------------------------------------------


def channel_key(prefix: str, channel: str) -> bytes:
    """Return the Redis pub/sub channel that carries logical ``channel``: ``<prefix><channel>``."""
    return (prefix + channel).encode("utf-8")


def control_channel(prefix: str) -> str:
    """Return the Redis channel of node control events: ``<prefix>!node``.

    ``!`` is outside the logical channel alphabet, so no client channel can have this name.
    """
    return f"{prefix}!node"


def revocation_key(prefix: str, user_id: str, channel: str) -> str:
    """Return the Redis key holding when ``user_id`` lost access to ``channel`` (Unix time)."""
    return f"{prefix}revoked:{channel}|{user_id}"


def presence_key(prefix: str, channel: str) -> str:
    """Return the Redis hash of ``channel``'s presence entries (and its ``#v`` version)."""
    return f"{prefix}presence:{channel}"


def presence_nodes_key(prefix: str) -> str:
    """Return the sorted set of live node ids, scored by when each stops counting as alive."""
    return f"{prefix}presence-nodes"


def entry_field(socket_id: str, member_id: str) -> str:
    """Return the hash field of one connection's entry: ``<socket id>|<member id>``.

    Socket ids are ``<node id>.<counter>`` (hex and digits), so the node is the part before
    the first ``.`` and the member id is everything after the first ``|``; the presence
    scripts split fields exactly so.
    """
    return f"{socket_id}|{member_id}"


# Message bodies -------------------------------------------------------------------------------


def encode_message(message: Message, prefix: str) -> list[tuple[bytes, bytes]]:
    """Return the ``(redis channel, body)`` pairs that carry ``message``: one per channel.

    The body is ``rtb1\\n<event>\\n<exclude or empty>\\n<payload>`` in UTF-8, where the
    payload is ``message.payload`` unchanged (docs/server.md, "Redis message format"). Event
    names and socket ids never contain a newline, so a reader splits on the first three.
    """
    body = b"\n".join(
        (
            BODY_VERSION,
            message.event.encode("ascii"),
            (message.exclude or "").encode("ascii"),
            message.payload.encode("utf-8"),
        )
    )
    return [(channel_key(prefix, channel), body) for channel in message.channels]


def decode_body(body: bytes) -> tuple[str, str | None, bytes]:
    """Return ``(event, exclude, payload)`` from a body made by :func:`encode_message`.

    Raises ``ValueError`` for a body in another format.
    """
    parts = body.split(b"\n", 3)
    if len(parts) != 4 or parts[0] != BODY_VERSION:
        raise ValueError(f"not an rtbridge message body: {body[:40]!r}")
    event = parts[1].decode("ascii")
    exclude = parts[2].decode("ascii") or None
    return event, exclude, parts[3]


# Whisper bodies -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Whisper:
    """A decoded whisper body: relayed to a channel's subscribers except ``sender``."""

    event: str
    sender: str
    user_id: str | None
    data_json: bytes


def encode_whisper(event: str, data_json: bytes, user_id: str | None, sender: str) -> bytes:
    """Return a whisper body: ``rtw1\\n<event>\\n<sender socket id>\\n<user id or empty>\\n<data>``.

    A newline in the user id becomes a space, so the body always has five lines.
    """
    return b"\n".join(
        (
            WHISPER_VERSION,
            event.encode("ascii"),
            sender.encode("ascii"),
            (user_id or "").replace("\n", " ").encode("utf-8"),
            data_json,
        )
    )


def is_whisper(body: bytes) -> bool:
    """Return whether ``body`` (read on a channel's Redis channel) is a whisper, not a message."""
    return body.startswith(_WHISPER_HEAD)


def decode_whisper(body: bytes) -> Whisper:
    """Return the whisper in a body made by :func:`encode_whisper`; ``ValueError`` otherwise."""
    parts = body.split(b"\n", 4)
    if len(parts) != 5 or parts[0] != WHISPER_VERSION:
        raise ValueError(f"not an rtbridge whisper body: {body[:40]!r}")
    try:
        return Whisper(
            parts[1].decode("ascii"),
            parts[2].decode("ascii"),
            parts[3].decode("utf-8") or None,
            parts[4],
        )
    except UnicodeDecodeError as exc:
        raise ValueError(f"not an rtbridge whisper body ({exc}): {body[:40]!r}") from None


# Control bodies -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Revocation:
    """A decoded ``revoke`` control event: ``user_id`` lost access to ``channel`` at ``at``."""

    user_id: str
    channel: str
    at: float


@dataclass(frozen=True, slots=True)
class PresenceChange:
    """A decoded ``presence`` control event: ``member`` joined or left at ``version``."""

    channel: str
    action: str
    member: dict[str, Any]
    version: int


def encode_control(event: dict[str, Any]) -> bytes:
    """Return the body of a control event: ``rtc1\\n<compact JSON>``."""
    return _CONTROL_HEAD + json.dumps(event, separators=(",", ":")).encode("utf-8")


def encode_revocation(user_id: str, channel: str, at: float) -> bytes:
    """Return the control body telling every node that ``user_id`` lost ``channel`` at ``at``."""
    return encode_control({"t": "revoke", "u": user_id, "c": channel, "at": at})


def decode_control(body: bytes) -> Revocation | PresenceChange | None:
    """Return the event in a control body, or ``None`` for another format or an unknown kind.

    Unknown kinds are left to the nodes that know them (a newer node may send more kinds).
    Raises ``ValueError`` for an ``rtc1`` body that is not a well-formed event.
    """
    if not body.startswith(_CONTROL_HEAD):
        return None
    try:
        event = json.loads(body[len(_CONTROL_HEAD) :])
        kind = event["t"]
        if kind == "presence":
            return PresenceChange(event["c"], event["a"], event["m"], int(event["v"]))
        if kind == "revoke":
            return Revocation(str(event["u"]), event["c"], float(event["at"]))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed control event {body[:60]!r}: {exc!r}") from None
    return None


#: Lua (for the server's presence scripts) that publishes a presence change as a control body:
#: ``publish_presence(control channel, channel, action, version, member JSON)``.
LUA_PUBLISH_PRESENCE = (
    "local function publish_presence(control, channel, action, version, member_json)\n"
    f"  redis.call('PUBLISH', control, {json.dumps(_CONTROL_HEAD.decode('ascii'))} ..\n"
    """    '{"t":"presence","c":' .. cjson.encode(channel) .. ',"a":"' .. action ..
    '","v":' .. string.format('%d', version) .. ',"m":' .. member_json .. '}')
end
"""
)
