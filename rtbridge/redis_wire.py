"""The Redis wire format shared by the ``redis`` backend and the server nodes: keys and bodies.

Everything one side writes and the other reads lives here, so the two cannot drift apart
(docs/server.md, "Redis message format" and "Presence in Redis"). With ``P`` the prefix:

* ``P{<channel>}`` (pub/sub): message bodies with their position,
  ``rtb2\\n<offset>\\n<epoch>\\n<event>\\n<exclude>\\n<payload>`` (written by
  :data:`LUA_APPEND`; other programs may still publish ``rtb1`` bodies without one), and
  whisper bodies, ``rtw1\\n<event>\\n<sender>\\n<user id>\\n<data JSON>`` (``PUBLISH``,
  or ``SPUBLISH`` on Redis Cluster).
* ``P{<channel>}`` also carries control bodies, ``rtc1\\n<compact JSON>``, about that channel:
  a revocation ``{"t":"revoke","u","c","at"}`` or a presence change
  ``{"t":"presence","c","a","v","m"}`` (written by the server's Lua scripts with
  :data:`LUA_PUBLISH_PRESENCE`), so they reach exactly the nodes with subscribers there.
* ``P!node`` (pub/sub): keeps a node's pub/sub connection open while it needs no channel
  (control bodies there are still read).
* ``Prevoked:{<channel>}|<user id>`` (string): when the user lost access, as Unix time.
* ``Ppresence:{<channel>}`` (hash) and ``Ppresence-nodes:{<channel>}`` (sorted set):
  presence entries and the nodes alive on that channel.
* ``Pposition:{<channel>}`` (hash ``epoch``, ``offset``) and ``Phistory:{<channel>}`` (stream of
  ``o`` offset, ``e`` event, ``x`` exclude, ``d`` data JSON): a channel's position and history,
  written by :data:`LUA_APPEND` (the ``redis`` backend: it also publishes) and read by
  :data:`LUA_READ` (the nodes); both expire ``ttl`` after the last publish. The hosted
  backends' ``"redis"`` history store runs the same two scripts (``LUA_APPEND`` without
  its PUBLISH).

Every key of a channel carries ``{<channel>}``, its Redis Cluster hash tag, so the scripts
and transactions of one channel touch one slot (:func:`multi_key_operations`).

Imports no Redis client and nothing above the core, so both sides (and tests) can use it.
"""

from __future__ import annotations

import json
from binascii import crc_hqx
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .exceptions import ImproperlyConfigured
from .history import Entry, Position, Positions
from .messages import Message

__all__ = [
    "BODY_VERSION",
    "CONTROL_VERSION",
    "DEFAULT_PREFIX",
    "DEFAULT_URL",
    "LUA_APPEND",
    "LUA_PUBLISH_PRESENCE",
    "LUA_READ",
    "POSITIONED_BODY_VERSION",
    "URL_SCHEMES",
    "WHISPER_VERSION",
    "Delivery",
    "PresenceChange",
    "Revocation",
    "Whisper",
    "append_arguments",
    "append_result",
    "channel_from_key",
    "channel_key",
    "check_prefix",
    "check_url",
    "control_channel",
    "decode_body",
    "decode_control",
    "decode_message",
    "decode_whisper",
    "encode_control",
    "encode_message",
    "encode_revocation",
    "encode_whisper",
    "entry_field",
    "group_by_slot",
    "history_key",
    "is_control",
    "is_whisper",
    "key_slot",
    "multi_key_operations",
    "position_key",
    "presence_key",
    "presence_nodes_key",
    "read_arguments",
    "read_result",
    "revocation_key",
    "safe_url",
]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "rtbridge:"
URL_SCHEMES = ("redis://", "rediss://", "unix://")
#: First line of a message body without a position (other programs may publish these).
BODY_VERSION = b"rtb1"
#: First line of a message body with its position, as :data:`LUA_APPEND` publishes it.
POSITIONED_BODY_VERSION = b"rtb2"
#: First line of a whisper body on a channel's Redis channel.
WHISPER_VERSION = b"rtw1"
#: First line of a control body (presence events, revocations) on ``<prefix>!node``.
CONTROL_VERSION = b"rtc1"

_WHISPER_HEAD = WHISPER_VERSION + b"\n"
_POSITIONED_HEAD = POSITIONED_BODY_VERSION + b"\n"
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
    """Return the Redis pub/sub channel that carries logical ``channel``: ``<prefix>{<channel>}``.

    The braces make ``channel`` the Redis Cluster hash tag, as in every key of the channel,
    so a script may publish on it (``SPUBLISH``) next to the channel's keys.
    """
    return f"{prefix}{{{channel}}}".encode()


def channel_from_key(prefix: str, name: bytes) -> str:
    """Return the logical channel :func:`channel_key` made ``name`` from; else ``ValueError``."""
    head = f"{prefix}{{".encode()
    if not (name.startswith(head) and name.endswith(b"}")):
        raise ValueError(f"not an rtbridge channel of prefix {prefix!r}: {name[:80]!r}")
    return name[len(head) : -1].decode("utf-8")


def control_channel(prefix: str) -> str:
    """Return the Redis channel of node control events: ``<prefix>!node``.

    ``!`` is outside the logical channel alphabet, so no client channel can have this name.
    """
    return f"{prefix}!node"


def revocation_key(prefix: str, user_id: str, channel: str) -> str:
    """Return the Redis key holding when ``user_id`` lost access to ``channel`` (Unix time)."""
    return f"{prefix}revoked:{{{channel}}}|{user_id}"


def presence_key(prefix: str, channel: str) -> str:
    """Return the Redis hash of ``channel``'s presence entries (and its ``#v`` version)."""
    return f"{prefix}presence:{{{channel}}}"


def presence_nodes_key(prefix: str, channel: str) -> str:
    """Return the sorted set of the node ids alive on ``channel``, scored by when each stops
    counting as alive (per channel, so a presence script never leaves the channel's slot)."""
    return f"{prefix}presence-nodes:{{{channel}}}"


def position_key(prefix: str, channel: str) -> str:
    """Return the hash of ``channel``'s position: ``epoch`` and the last ``offset`` given out."""
    return f"{prefix}position:{{{channel}}}"


def history_key(prefix: str, channel: str) -> str:
    """Return the stream of ``channel``'s history (entry ids are Redis times, for age trims)."""
    return f"{prefix}history:{{{channel}}}"


def entry_field(socket_id: str, member_id: str) -> str:
    """Return the hash field of one connection's entry: ``<socket id>|<member id>``.

    Socket ids are ``<node id>.<counter>`` (hex and digits), so the node is the part before
    the first ``.`` and the member id is everything after the first ``|``; the presence
    scripts split fields exactly so.
    """
    return f"{socket_id}|{member_id}"


#: Redis Cluster's number of hash slots.
CLUSTER_SLOTS = 16384


def key_slot(name: str | bytes) -> int:
    """Return the Redis Cluster hash slot of a key or shard channel ``name``.

    As Redis computes it: CRC16 of the hash tag (the text between the first ``{`` and the
    next ``}``, when not empty) or of the whole name, modulo 16384.
    """
    raw = name.encode("utf-8") if isinstance(name, str) else name
    start = raw.find(b"{")
    if start >= 0:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc_hqx(raw, 0) % CLUSTER_SLOTS


def multi_key_operations(prefix: str, channel: str) -> dict[str, list[str]]:
    """Return each atomic operation on ``channel`` and the keys it touches together.

    Redis Cluster runs a script or a transaction only when all its keys are in one slot; the
    system checks (``rtbridge.E061``) test these lists with :func:`key_slot`. Keep it next
    to the key builders: a new multi-key script adds its entry here.
    """
    return {
        "presence join/leave/sweep (rtbridge.server.presence)": [
            presence_key(prefix, channel),
            presence_nodes_key(prefix, channel),
        ],
        "revoke (RedisBackend.revoke)": [
            revocation_key(prefix, "<user id>", channel),
            channel_key(prefix, channel).decode(),  # the shard channel it publishes on
        ],
        "publish (LUA_APPEND)": [
            position_key(prefix, channel),
            history_key(prefix, channel),
            channel_key(prefix, channel).decode(),
        ],
        "history read (LUA_READ)": [position_key(prefix, channel), history_key(prefix, channel)],
    }


def group_by_slot(
    messages: Sequence[Message], prefix: str
) -> list[tuple[list[int], list[tuple[str, ...]]]]:
    """Split the channels of ``messages`` by Redis Cluster hash slot, keeping their order.

    Returns, per slot (in order of first use): the indexes of the messages with a channel
    there and, for each, its channels in that slot. A message to channels on several slots
    appears in several groups, one script call each (none atomic across slots).
    """
    groups: dict[int, tuple[list[int], list[tuple[str, ...]]]] = {}
    for index, message in enumerate(messages):
        by_slot: dict[int, list[str]] = {}
        for channel in message.channels:
            by_slot.setdefault(key_slot(channel_key(prefix, channel)), []).append(channel)
        for slot, channels in by_slot.items():
            indexes, subsets = groups.setdefault(slot, ([], []))
            indexes.append(index)
            subsets.append(tuple(channels))
    return list(groups.values())


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


@dataclass(frozen=True, slots=True)
class Delivery:
    """A decoded message body: what a channel's subscribers get, and its position if any.

    ``offset``/``epoch`` are ``None`` for an ``rtb1`` body (published without a position).
    """

    offset: int | None
    epoch: str | None
    event: str
    exclude: str | None
    payload: bytes


def decode_message(body: bytes) -> Delivery:
    """Return the message in an ``rtb2`` body (with position) or an ``rtb1`` body (without).

    Raises ``ValueError`` for a body in another format.
    """
    if body.startswith(_POSITIONED_HEAD):
        parts = body.split(b"\n", 5)
        if len(parts) == 6:
            try:
                offset = int(parts[1])
                epoch = parts[2].decode("ascii")
                exclude = parts[4].decode("ascii") or None
                return Delivery(offset, epoch, parts[3].decode("ascii"), exclude, parts[5])
            except (ValueError, UnicodeDecodeError):
                pass
        raise ValueError(f"not an rtbridge message body: {body[:60]!r}")
    event, exclude, payload = decode_body(body)
    return Delivery(None, None, event, exclude, payload)


# Positions and history ------------------------------------------------------------------------

#: Lua: give each message the next offset on each of its channels, keep it in the channel's
#: history, and (when asked) publish it with its position, all in one atomic step.
#:
#: ``KEYS``: for each channel of each message, in order, its position hash and its history
#: stream. ``ARGV``: the epoch for positions created now, the history size (0: keep none),
#: the ttl in milliseconds, the publish command (``PUBLISH``, ``SPUBLISH`` on Redis Cluster,
#: or empty: no publish); then for each message its event, its exclude (or empty), its data
#: JSON and its number of channels, followed, when publishing, by the pub/sub name of each.
#: Returns ``offset, epoch`` for each channel of each message. On Redis Cluster every key and
#: pub/sub name of one call must be in one slot (:func:`group_by_slot`).
#:
#: A missing position hash (never published, expired after ``ttl`` without a publish, lost
#: with Redis) gets the new epoch and drops any history left of the old one, so an offset is
#: never reused within an epoch and the stream always holds a contiguous run of offsets.
#: The stream is trimmed cheaply here (``MAXLEN ~``: whole nodes, so it may hold up to ~100
#: entries more than ``size``); :data:`LUA_READ` enforces both bounds exactly.
LUA_APPEND = """
local new_epoch, size, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local publish = ARGV[4] ~= ''
local answer, key, arg = {}, 1, 5
while arg <= #ARGV do
  local event, exclude, data = ARGV[arg], ARGV[arg + 1], ARGV[arg + 2]
  local count = tonumber(ARGV[arg + 3])
  arg = arg + 4
  for _ = 1, count do
    local position, history = KEYS[key], KEYS[key + 1]
    key = key + 2
    local epoch = redis.call('HGET', position, 'epoch')
    if not epoch then
      epoch = new_epoch
      redis.call('DEL', history)
      redis.call('HSET', position, 'epoch', epoch, 'offset', 0)
    end
    local offset = string.format('%d', redis.call('HINCRBY', position, 'offset', 1))
    redis.call('PEXPIRE', position, ttl)
    if size > 0 then
      redis.call('XADD', history, 'MAXLEN', '~', size, '*',
        'o', offset, 'e', event, 'x', exclude, 'd', data)
      redis.call('PEXPIRE', history, ttl)
    end
    if publish then
      redis.call(ARGV[4], ARGV[arg], 'rtb2\\n' .. offset .. '\\n' .. epoch .. '\\n' ..
        event .. '\\n' .. exclude .. '\\n' .. data)
      arg = arg + 1
    end
    answer[#answer + 1] = offset
    answer[#answer + 1] = epoch
  end
end
return answer
"""

#: Lua: return a channel's position and, from a given position, the messages after it.
#:
#: ``KEYS``: the channel's position hash and history stream. ``ARGV``: the epoch to create
#: the position with if it is missing (offset 0: nothing published yet), the ttl in
#: milliseconds, the offset and epoch to read after (``-1`` and ``""``: none), ``1`` when that
#: position is one this node delivered itself (else ``0``), and the most messages to return
#: (0: none). Returns ``offset, epoch`` of the top, then ``offset, event, exclude, data`` of
#: each message after the position, oldest first, when the position is in the same epoch and
#: at most the limit behind (the caller checks the run is complete: trimmed ones are missing).
#:
#: The bounds are exact here: a position more than ``limit`` (the history size) behind the
#: top gets no messages, and entries older than the ttl are trimmed before reading.
#: Creating the position on a read means a client that subscribes before the first publish
#: is in the epoch that publish uses. The read renews the ttl of the position (somebody
#: listens). A node that delivered an offset beyond the top in the same epoch proves that
#: Redis went back (e.g. restarted from an older snapshot): offsets would be reused, so the
#: epoch is renewed.
LUA_READ = """
local position, history = KEYS[1], KEYS[2]
local ttl, since, since_epoch = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local delivered, limit = ARGV[5] == '1', tonumber(ARGV[6])
local top = redis.call('HMGET', position, 'offset', 'epoch')
local offset, epoch = tonumber(top[1]) or 0, top[2]
if epoch and delivered and epoch == since_epoch and offset < since then
  epoch = false
end
if not epoch then
  epoch, offset = ARGV[1], 0
  redis.call('DEL', history)
  redis.call('HSET', position, 'epoch', epoch, 'offset', 0)
end
redis.call('PEXPIRE', position, ttl)
local answer = {offset, epoch}
if limit > 0 and since >= 0 and since < offset and epoch == since_epoch
    and offset - since <= limit then
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  redis.call('XTRIM', history, 'MINID', string.format('%d', now - ttl))
  local entries = redis.call('XREVRANGE', history, '+', '-', 'COUNT', offset - since)
  for i = #entries, 1, -1 do
    local fields = entries[i][2]
    for j = 2, #fields, 2 do
      answer[#answer + 1] = fields[j]
    end
  end
end
return answer
"""


def append_arguments(
    messages: Sequence[Message],
    prefix: str,
    *,
    epoch: str,
    size: int,
    ttl: float,
    publish: bool = True,
    sharded: bool = False,
    channels: Sequence[Sequence[str]] | None = None,
) -> tuple[list[bytes], list[bytes]]:
    """Return ``(keys, args)`` of :data:`LUA_APPEND` for ``messages``, encoded.

    ``epoch`` is used only by channels whose position is created now (pass a fresh
    ``history.new_epoch()``); ``size`` 0 keeps no history; ``ttl`` is in seconds.
    ``sharded``: publish with ``SPUBLISH`` (Redis Cluster). ``channels``: for each message,
    the channels of this call (one slot's, from :func:`group_by_slot`); all by default.
    Everything is bytes already, so the Redis client sends it without converting each
    argument.
    """
    keys: list[bytes] = []
    command = (b"SPUBLISH" if sharded else b"PUBLISH") if publish else b""
    args = [epoch.encode("ascii"), b"%d" % size, b"%d" % _milliseconds(ttl), command]
    for number, message in enumerate(messages):
        names = message.channels if channels is None else channels[number]
        args += [
            message.event.encode("ascii"),
            (message.exclude or "").encode("ascii"),
            message.payload.encode("utf-8"),
            b"%d" % len(names),
        ]
        for channel in names:
            keys.append(position_key(prefix, channel).encode("utf-8"))
            keys.append(history_key(prefix, channel).encode("utf-8"))
            if publish:
                args.append(channel_key(prefix, channel))
    return keys, args


def append_result(
    messages: Sequence[Message],
    result: Sequence[Any],
    channels: Sequence[Sequence[str]] | None = None,
) -> Positions:
    """Return the positions :data:`LUA_APPEND` answered: per message, channel → position.

    ``channels``: as given to :func:`append_arguments`.
    """
    positions: Positions = []
    values = iter(result)
    for number, message in enumerate(messages):
        names = message.channels if channels is None else channels[number]
        positions.append(
            {channel: Position(int(next(values)), _text(next(values))) for channel in names}
        )
    return positions


def read_arguments(
    prefix: str,
    channel: str,
    *,
    epoch: str,
    ttl: float,
    since: Position | None = None,
    delivered: bool = False,
    limit: int = 0,
) -> tuple[list[str], list[str | int]]:
    """Return ``(keys, args)`` of :data:`LUA_READ` for ``channel``.

    ``epoch``: a fresh epoch, used only if the position is missing. ``since``: read the
    messages after it (at most ``limit``). ``delivered``: ``since`` is a position this node
    delivered itself (so a top behind it proves that Redis went back).
    """
    return (
        [position_key(prefix, channel), history_key(prefix, channel)],
        [
            epoch,
            _milliseconds(ttl),
            -1 if since is None else since.offset,
            "" if since is None else since.epoch,
            1 if delivered else 0,
            limit,
        ],
    )


def read_result(result: Sequence[Any]) -> tuple[Position, list[Entry]]:
    """Return the top and the messages :data:`LUA_READ` answered."""
    top = Position(int(result[0]), _text(result[1]))
    entries = [
        Entry(
            int(result[index]),
            _text(result[index + 1]),
            _utf8(result[index + 3]),
            _text(result[index + 2]) or None,
        )
        for index in range(2, len(result) - 3, 4)
    ]
    return top, entries


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: bytes | str) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


def _utf8(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


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


def is_control(body: bytes) -> bool:
    """Return whether ``body`` is a control body (presence change, revocation)."""
    return body.startswith(_CONTROL_HEAD)


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


#: Lua (for the server's presence scripts) that publishes a presence change as a control body
#: on the channel's own pub/sub channel: ``publish_presence(command, target, channel, action,
#: version, member JSON)``, ``command`` being ``PUBLISH`` or (Redis Cluster) ``SPUBLISH``.
LUA_PUBLISH_PRESENCE = (
    "local function publish_presence(command, target, channel, action, version, member_json)\n"
    f"  redis.call(command, target, {json.dumps(_CONTROL_HEAD.decode('ascii'))} ..\n"
    """    '{"t":"presence","c":' .. cjson.encode(channel) .. ',"a":"' .. action ..
    '","v":' .. string.format('%d', version) .. ',"m":' .. member_json .. '}')
end
"""
)
