"""Wire protocol v2 (docs/protocol.md): codes, request parsing and server frames as bytes."""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from typing import Any

from ..channel_names import validate_channel
from ..exceptions import InvalidChannelName, InvalidPosition
from ..history import Position, parse_since

__all__ = [
    "FEATURES",
    "PROTOCOL_VERSION",
    "CloseCode",
    "ErrorCode",
    "ProtocolError",
    "Request",
    "ack_frame",
    "error_frame",
    "frame_payload",
    "frame_payloads",
    "gap_frame",
    "message_frame",
    "parse_request",
    "presence_frame",
    "reply_frame",
    "revoked_frame",
    "skip_frame",
    "unpositioned_frame",
    "websocket_text_frame",
    "welcome_frame",
    "whisper_frame",
]

PROTOCOL_VERSION = 2
#: Optional ops this server offers, listed in the welcome frame.
FEATURES = ("auth", "presence", "whisper", "call", "revoke")
#: Largest ``data`` of a whisper, as compact JSON in UTF-8.
MAX_WHISPER_BYTES = 4096
#: Default deepest nesting of arrays and objects in a client frame (``max_json_depth``).
MAX_JSON_DEPTH = 32
_WHISPER_EVENT_RE = re.compile(r"[A-Za-z0-9_\-.]{1,64}")


class ErrorCode:
    """Codes of ``error`` frames (the connection stays open)."""

    BAD_FRAME = 4400
    UNKNOWN_OP = 4404
    BAD_ARGUMENT = 4409
    INVALID_CHANNEL = 4422
    FORBIDDEN = 4403
    FRAME_TOO_LARGE = 4413
    TOO_MANY_SUBSCRIPTIONS = 4429
    RATE_LIMITED = 4430


class CloseCode:
    """WebSocket close codes the server uses."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    INVALID_PAYLOAD = 1007
    MESSAGE_TOO_BIG = 1009
    ABUSE = 4001
    SLOW_CONSUMER = 4002
    TOO_MANY_CONNECTIONS = 4003
    IDLE_TIMEOUT = 4408


#: Ops a client may send, and whether each needs an integer ``id``.
CLIENT_OPS: dict[str, bool] = {
    "subscribe": True,
    "unsubscribe": True,
    "ping": True,
    "heartbeat": False,
    "whisper": True,
    "call": True,
}


class ProtocolError(Exception):
    """A client frame that cannot be served; becomes an ``error`` frame with ``code``."""

    def __init__(
        self,
        code: int,
        reason: str,
        request_id: int | None = None,
        detail: str | None = None,
        *,
        hostile: bool = False,
    ) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.request_id = request_id
        self.detail = detail
        #: Crafted to cost the server (no client library sends it): worth a WARNING.
        self.hostile = hostile


@dataclass(frozen=True, slots=True)
class Request:
    """One well-formed client frame."""

    op: str
    id: int | None = None
    channel: str | None = None
    auth: str | None = None
    #: subscribe: the last position the client applied on the channel (resume from it).
    since: Position | None = None
    #: whisper: the event name and the data as compact JSON text.
    event: str | None = None
    data_json: str | None = None
    #: call: the route, the verb and the arguments.
    route: str | None = None
    verb: str | None = None
    args: dict[str, Any] | None = None


def _is_int(value: object) -> bool:
    # bool is an int subclass, but {"id": true} is a client bug worth reporting.
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value (RFC 8259 has no NaN or Infinity)")


# Strict JSON: NaN, Infinity and -Infinity (Python's extension) are refused.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
# What changes the nesting depth: brackets outside strings (strings are skipped whole).
_DEPTH_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def json_too_deep(text: str, max_depth: int) -> bool:
    """Return whether ``text`` nests arrays/objects deeper than ``max_depth`` (no recursion).

    Python's JSON decoder recurses per level and raises ``RecursionError`` near 1,000 levels
    (a 64 KiB frame holds 30,000), so the depth is measured before decoding.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return False  # cannot be deeper than the number of openings
    depth = 0
    for match in _DEPTH_TOKENS.finditer(text):
        char = match.group()[0]
        if char == "[" or char == "{":
            depth += 1
            if depth > max_depth:
                return True
        elif char != '"':
            depth -= 1
    return False


def parse_request(
    raw: str | bytes, max_frame_bytes: int, max_depth: int = MAX_JSON_DEPTH
) -> Request:
    """Parse one client frame into a ``Request``, or raise ``ProtocolError`` with its code.

    The JSON must be strict (no ``NaN``/``Infinity``) and nest at most ``max_depth`` levels.
    """
    if isinstance(raw, bytes):
        raise ProtocolError(
            ErrorCode.BAD_FRAME, "binary frames are not accepted; send JSON text frames"
        )
    # A str's UTF-8 size is between len and 4*len; encode only when the bound is unclear.
    if len(raw) * 4 > max_frame_bytes:
        size = len(raw.encode("utf-8", "surrogatepass"))
        if size > max_frame_bytes:
            raise ProtocolError(
                ErrorCode.FRAME_TOO_LARGE,
                f"frame is {size} bytes; the limit is {max_frame_bytes} bytes",
            )
    if json_too_deep(raw, max_depth):
        raise ProtocolError(
            ErrorCode.BAD_FRAME,
            f"frame nests arrays or objects deeper than {max_depth} levels, the limit",
            hostile=True,
        )
    try:
        obj = _DECODER.decode(raw)
    except ValueError as exc:
        raise ProtocolError(ErrorCode.BAD_FRAME, f"frame is not JSON: {exc}") from None
    except RecursionError:  # not reachable below the depth limit; never a traceback
        raise ProtocolError(
            ErrorCode.BAD_FRAME, "frame nests too deeply to decode", hostile=True
        ) from None
    if not isinstance(obj, dict):
        raise ProtocolError(
            ErrorCode.BAD_FRAME, f"frame is a JSON {type(obj).__name__}; send a JSON object"
        )
    raw_id = obj.get("id")
    request_id = raw_id if _is_int(raw_id) else None
    op = obj.get("op")
    if not isinstance(op, str) or op not in CLIENT_OPS:
        shown = op if isinstance(op, str) else None
        reason = (
            f"unknown op {shown[:40]!r}" if shown is not None else "the frame has no string 'op'"
        )
        raise ProtocolError(
            ErrorCode.UNKNOWN_OP,
            f"{reason}; known ops: {', '.join(CLIENT_OPS)}",
            request_id,
        )
    if CLIENT_OPS[op] and request_id is None:
        raise ProtocolError(
            ErrorCode.BAD_ARGUMENT,
            f"{op!r} needs an integer 'id'; got {_describe(raw_id)}",
        )
    if op == "call":
        return _parse_call(obj, request_id)
    if op not in ("subscribe", "unsubscribe", "whisper"):
        return Request(op, request_id)
    channel = obj.get("channel")
    if not isinstance(channel, str):
        raise ProtocolError(
            ErrorCode.BAD_ARGUMENT,
            f"{op!r} needs a string 'channel'; got {_describe(channel)}",
            request_id,
        )
    try:
        validate_channel(channel)
    except InvalidChannelName as exc:
        raise ProtocolError(ErrorCode.INVALID_CHANNEL, str(exc), request_id) from None
    if op == "whisper":
        return _parse_whisper(obj, request_id, channel)
    auth = obj.get("auth")
    if auth is not None and not isinstance(auth, str):
        raise ProtocolError(
            ErrorCode.BAD_ARGUMENT,
            f"'auth' must be a string token; got {_describe(auth)}",
            request_id,
        )
    since = None
    if op == "subscribe" and "since" in obj:
        try:
            since = parse_since(obj["since"])
        except InvalidPosition as exc:
            raise ProtocolError(ErrorCode.BAD_ARGUMENT, str(exc), request_id) from None
    return Request(op, request_id, channel, auth, since)


def _parse_whisper(obj: dict[str, Any], request_id: int | None, channel: str) -> Request:
    event = obj.get("event")
    if not isinstance(event, str) or not _WHISPER_EVENT_RE.fullmatch(event):
        raise ProtocolError(
            ErrorCode.BAD_ARGUMENT,
            f"'whisper' needs an 'event' of 1-64 characters A-Z a-z 0-9 _ - . ; got "
            f"{_describe(event)}",
            request_id,
        )
    data_json = json.dumps(obj.get("data"), ensure_ascii=False, separators=(",", ":"))
    size = len(data_json.encode("utf-8", "surrogatepass"))
    if size > MAX_WHISPER_BYTES:
        raise ProtocolError(
            ErrorCode.FRAME_TOO_LARGE,
            f"whisper data is {size} bytes as JSON; the limit is {MAX_WHISPER_BYTES} bytes",
            request_id,
        )
    return Request("whisper", request_id, channel, event=event, data_json=data_json)


def _parse_call(obj: dict[str, Any], request_id: int | None) -> Request:
    route, verb, args = obj.get("route"), obj.get("verb"), obj.get("args", {})
    for key, value in (("route", route), ("verb", verb)):
        if not isinstance(value, str) or not value:
            raise ProtocolError(
                ErrorCode.BAD_ARGUMENT,
                f"'call' needs a string {key!r}; got {_describe(value)}",
                request_id,
            )
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ProtocolError(
            ErrorCode.BAD_ARGUMENT,
            f"'call' needs 'args' as a JSON object; got {_describe(args)}",
            request_id,
        )
    return Request("call", request_id, route=route, verb=verb, args=args)


def _describe(value: object) -> str:
    if value is None:
        return "nothing"
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"


# Server frames --------------------------------------------------------------------------


def websocket_text_frame(body: bytes) -> bytes:
    """Wrap ``body`` in one unmasked, final WebSocket text frame (RFC 6455 section 5.2).

    Server frames are never masked, so the same bytes can be written to every subscriber.
    """
    size = len(body)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size <= 0xFFFF:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + body


def frame_payload(frame: bytes) -> bytes:
    """Return the payload of a frame made by :func:`websocket_text_frame` (its inverse)."""
    length = frame[1] & 0x7F
    return frame[2 + {126: 2, 127: 8}.get(length, 0) :]


def frame_payloads(data: bytes | bytearray) -> list[bytes]:
    """Return the payloads of the frames made by :func:`websocket_text_frame`, back to back."""
    payloads = []
    position, end = 0, len(data)
    while position < end:
        length = data[position + 1] & 0x7F
        start = position + 2
        if length == 126:
            length, start = int.from_bytes(data[start : start + 2], "big"), start + 2
        elif length == 127:
            length, start = int.from_bytes(data[start : start + 8], "big"), start + 8
        payloads.append(bytes(data[start : start + length]))
        position = start + length
    return payloads


def _frame(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return websocket_text_frame(body)


def welcome_frame(
    socket_id: str, heartbeat: float, server: str, features: tuple[str, ...] = FEATURES
) -> bytes:
    """Return the wire bytes of the ``welcome`` frame."""
    interval: float | int = int(heartbeat) if float(heartbeat).is_integer() else heartbeat
    return _frame(
        {
            "op": "welcome",
            "protocol": PROTOCOL_VERSION,
            "socket_id": socket_id,
            "heartbeat": interval,
            "server": server,
            "features": list(features),
        }
    )


def ack_frame(
    request_id: int | None,
    channel: str | None = None,
    position: Position | None = None,
    members: list[dict[str, Any]] | None = None,
    recovered: bool | None = None,
) -> bytes:
    """Return the wire bytes of an ``ack``.

    A subscribe's ack carries the ``position`` it starts from (``offset``, ``epoch``, and
    ``seq`` equal to the offset for protocol 1 clients), ``recovered`` when the subscribe
    asked to resume, and ``members`` on a presence channel.
    """
    obj: dict[str, Any] = {"op": "ack", "id": request_id}
    if channel is not None:
        obj["channel"] = channel
    if position is not None:
        obj["offset"] = obj["seq"] = position.offset
        obj["epoch"] = position.epoch
    if recovered is not None:
        obj["recovered"] = recovered
    if members is not None:
        obj["members"] = members
    return _frame(obj)


def presence_frame(channel: str, action: str, member: dict[str, Any]) -> bytes:
    """Return the wire bytes of a ``presence`` frame (``action`` is ``join`` or ``leave``)."""
    return _frame({"op": "presence", "channel": channel, "action": action, "member": member})


def whisper_frame(channel: str, event: str, data_json: bytes, user_id: str | None) -> bytes:
    """Return the wire bytes of a relayed ``whisper``; ``data_json`` is spliced in as is."""
    body = b"".join(
        (
            b'{"op":"whisper","channel":',
            json_string(channel),
            b',"event":',
            json_string(event),
            b',"data":',
            data_json,
            b',"user_id":',
            json.dumps(user_id).encode("utf-8"),
            b"}",
        )
    )
    return websocket_text_frame(body)


def revoked_frame(channel: str, reason: str = "access revoked") -> bytes:
    """Return the wire bytes of a ``revoked`` frame."""
    return _frame({"op": "revoked", "channel": channel, "reason": reason})


def skip_frame(channel_json: bytes, offset: int, epoch_json: bytes) -> bytes:
    """Return the wire bytes of a ``skip``: the channel moved on to a message the excluded
    sender does not get (``seq`` repeats the offset for protocol 1 clients)."""
    number = str(offset).encode("ascii")
    return websocket_text_frame(
        b'{"op":"skip","channel":%b,"offset":%b,"epoch":%b,"seq":%b}'
        % (channel_json, number, epoch_json, number)
    )


def reply_frame(request_id: int | None, status: int, body_json: str) -> bytes:
    """Return the wire bytes of a ``reply`` to a ``call``; ``body_json`` is spliced in."""
    head = json.dumps({"op": "reply", "id": request_id, "status": status}, separators=(",", ":"))
    return websocket_text_frame(f'{head[:-1]},"body":{body_json}}}'.encode())


def pong_frame(request_id: int | None) -> bytes:
    """Return the wire bytes of a ``pong``."""
    return _frame({"op": "pong", "id": request_id})


def error_frame(request_id: int | None, code: int, reason: str, detail: str | None = None) -> bytes:
    """Return the wire bytes of an ``error`` frame (``detail`` says why a 4403/4430 happened)."""
    obj: dict[str, Any] = {"op": "error", "id": request_id, "code": code, "reason": reason}
    if detail is not None:
        obj["detail"] = detail
    return _frame(obj)


def gap_frame(channel: str, position: Position) -> bytes:
    """Return the wire bytes of a ``gap``: messages may be lost; go on from ``position``."""
    return _frame(
        {
            "op": "gap",
            "channel": channel,
            "offset": position.offset,
            "epoch": position.epoch,
            "recovered": False,
        }
    )


HEARTBEAT_FRAME = websocket_text_frame(b'{"op":"heartbeat"}')
#: A client's heartbeat answer exactly as the JS client sends it (served without parsing).
HEARTBEAT_ANSWER = '{"op":"heartbeat"}'

_MESSAGE_HEAD = b'{"op":"message","channel":'


def message_frame(
    channel_json: bytes, event_json: bytes, offset: int, epoch_json: bytes, payload: bytes
) -> bytes:
    """Return the wire bytes of a ``message`` frame at ``offset`` in the epoch ``epoch_json``.

    ``channel_json``, ``event_json`` and ``epoch_json`` are JSON strings (quotes included) and
    ``payload`` is the JSON text of the data as the publisher encoded it: it is spliced in,
    never decoded. ``seq`` repeats the offset for protocol 1 clients.
    """
    number = str(offset).encode("ascii")
    body = b"".join(
        (
            _MESSAGE_HEAD,
            channel_json,
            b',"event":',
            event_json,
            b',"offset":',
            number,
            b',"epoch":',
            epoch_json,
            b',"seq":',
            number,
            b',"data":',
            payload,
            b"}",
        )
    )
    return websocket_text_frame(body)


def unpositioned_frame(channel_json: bytes, event_json: bytes, payload: bytes) -> bytes:
    """Return the wire bytes of a ``message`` without a position (a body published without
    one, e.g. by an older rtbridge or another program): no ``offset``, ``epoch`` or ``seq``."""
    return websocket_text_frame(
        b"".join(
            (_MESSAGE_HEAD, channel_json, b',"event":', event_json, b',"data":', payload, b"}")
        )
    )


def json_string(value: str) -> bytes:
    """Return ``value`` as a JSON string literal in UTF-8."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")
