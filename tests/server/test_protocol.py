"""Unit tests of the protocol module: request parsing and server frames."""

from __future__ import annotations

import json
import struct

import pytest

from rtbridge.history import Position
from rtbridge.server.protocol import (
    HEARTBEAT_FRAME,
    ProtocolError,
    Request,
    ack_frame,
    error_frame,
    frame_payloads,
    gap_frame,
    json_string,
    message_frame,
    parse_request,
    presence_frame,
    reply_frame,
    revoked_frame,
    skip_frame,
    unpositioned_frame,
    websocket_text_frame,
    welcome_frame,
    whisper_frame,
)


def body(frame: bytes) -> object:
    """Decode the JSON of one unmasked server text frame, checking its header."""
    assert frame[0] == 0x81
    size = frame[1]
    offset = 2
    if size == 126:
        (size,) = struct.unpack("!H", frame[2:4])
        offset = 4
    elif size == 127:
        (size,) = struct.unpack("!Q", frame[2:10])
        offset = 10
    assert len(frame) == offset + size
    return json.loads(frame[offset:])


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_websocket_frame_lengths(size: int) -> None:
    payload = json.dumps("x" * max(0, size - 2)).encode() if size >= 2 else b"1" * size
    frame = websocket_text_frame(payload)
    if payload:
        assert body(frame) == json.loads(payload)


def test_message_frame_splices_the_payload() -> None:
    frame = message_frame(
        json_string("a.b"), json_string("created"), 7, json_string("k3J9"), b'{"t":"\xc3\xa9"}'
    )
    assert body(frame) == {
        "op": "message",
        "channel": "a.b",
        "event": "created",
        "offset": 7,
        "epoch": "k3J9",
        "seq": 7,  # for protocol 1 clients
        "data": {"t": "é"},
    }
    unpositioned = unpositioned_frame(json_string("a"), json_string("e"), b"[1]")
    assert body(unpositioned) == {"op": "message", "channel": "a", "event": "e", "data": [1]}


def test_other_frames() -> None:
    assert body(HEARTBEAT_FRAME) == {"op": "heartbeat"}
    assert body(ack_frame(3)) == {"op": "ack", "id": 3}
    assert body(ack_frame(3, "c", Position(0, "k3J9"))) == {
        "op": "ack",
        "id": 3,
        "channel": "c",
        "offset": 0,
        "epoch": "k3J9",
        "seq": 0,
    }
    assert body(ack_frame(3, "c", Position(4, "E"), recovered=False))["recovered"] is False  # type: ignore[index]
    assert body(gap_frame("c", Position(9, "E"))) == {
        "op": "gap",
        "channel": "c",
        "offset": 9,
        "epoch": "E",
        "recovered": False,
    }
    assert body(error_frame(None, 4400, "why")) == {
        "op": "error",
        "id": None,
        "code": 4400,
        "reason": "why",
    }
    assert body(welcome_frame("n.1", 25.0, "rtbridge/x"))["heartbeat"] == 25  # type: ignore[index]
    assert body(welcome_frame("n.1", 0.5, "rtbridge/x"))["heartbeat"] == 0.5  # type: ignore[index]


def test_parse_good_requests() -> None:
    assert parse_request('{"op":"ping","id":1}', 100) == Request("ping", 1)
    assert parse_request('{"op":"heartbeat"}', 100) == Request("heartbeat")
    assert parse_request('{"op":"subscribe","id":2,"channel":"a","x":1}', 100) == Request(
        "subscribe", 2, "a"
    )


def test_since_is_parsed_into_a_position() -> None:
    request = parse_request(
        '{"op":"subscribe","id":2,"channel":"a","since":{"offset":41,"epoch":"k3J9"}}', 200
    )
    assert request.since == Position(41, "k3J9")
    assert parse_request('{"op":"subscribe","id":2,"channel":"a","since":null}', 200).since is None


@pytest.mark.parametrize(
    "since",
    [
        {"offset": -1, "epoch": "E"},
        {"offset": 1.0, "epoch": "E"},
        {"offset": True, "epoch": "E"},
        {"offset": "4", "epoch": "E"},
        {"offset": 2**63, "epoch": "E"},
        {"offset": 1, "epoch": ""},
        {"offset": 1, "epoch": "a b"},
        {"offset": 1, "epoch": "x" * 65},
        {"offset": 1},
        {"offset": 1, "epoch": "E", "more": 1},
        [1, "E"],
        "1:E",
    ],
)
def test_a_malformed_since_is_4409(since: object) -> None:
    frame = json.dumps({"op": "subscribe", "id": 5, "channel": "a", "since": since})
    with pytest.raises(ProtocolError) as info:
        parse_request(frame, 1000)
    assert (info.value.code, info.value.request_id) == (4409, 5)
    assert "since" in info.value.reason


def test_size_is_counted_in_utf8_bytes() -> None:
    frame = json.dumps({"op": "ping", "id": 1, "pad": "é" * 40}, ensure_ascii=False)
    assert len(frame) < 100 < len(frame.encode())
    with pytest.raises(ProtocolError) as info:
        parse_request(frame, 100)
    assert info.value.code == 4413


def test_unknown_op_keeps_the_id_and_truncates_the_name() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(json.dumps({"op": "x" * 500, "id": 9}), 10_000)
    assert (info.value.code, info.value.request_id) == (4404, 9)
    assert len(info.value.reason) < 200


def test_frames_of_the_protected_channel_section() -> None:
    member = {"id": "2", "info": {"name": "Bob"}}
    assert body(ack_frame(4, "presence-x", Position(0, "E"), [member])) == {
        "op": "ack",
        "id": 4,
        "channel": "presence-x",
        "offset": 0,
        "epoch": "E",
        "seq": 0,
        "members": [member],
    }
    assert body(error_frame(4, 4403, "why", "expired"))["detail"] == "expired"  # type: ignore[index]
    assert body(presence_frame("presence-x", "join", member)) == {
        "op": "presence",
        "channel": "presence-x",
        "action": "join",
        "member": member,
    }
    assert body(whisper_frame("private-x", "typing", b'{"f":"\xc3\xa9"}', None)) == {
        "op": "whisper",
        "channel": "private-x",
        "event": "typing",
        "data": {"f": "é"},
        "user_id": None,
    }
    assert body(revoked_frame("private-x")) == {
        "op": "revoked",
        "channel": "private-x",
        "reason": "access revoked",
    }
    assert body(skip_frame(json_string("a"), 8, json_string("E"))) == {
        "op": "skip",
        "channel": "a",
        "offset": 8,
        "epoch": "E",
        "seq": 8,
    }
    assert body(reply_frame(7, 404, '{"error":{"code":"unknown_route"}}')) == {
        "op": "reply",
        "id": 7,
        "status": 404,
        "body": {"error": {"code": "unknown_route"}},
    }
    welcome = body(welcome_frame("n.1", 25, "rtbridge/x"))
    assert welcome["features"] == ["auth", "presence", "whisper", "call", "revoke"]  # type: ignore[index]


def test_parse_whisper_and_call() -> None:
    frame = {"op": "whisper", "id": 5, "channel": "private-a", "event": "typing", "data": [1]}
    assert parse_request(json.dumps(frame), 10_000) == Request(
        "whisper", 5, "private-a", event="typing", data_json="[1]"
    )
    no_data = parse_request(json.dumps({**frame, "data": None}), 10_000)
    assert no_data.data_json == "null"
    call = {"op": "call", "id": 7, "route": "todo-item", "verb": "get_list"}
    assert parse_request(json.dumps(call), 10_000) == Request(
        "call", 7, route="todo-item", verb="get_list", args={}
    )


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"op": "whisper", "id": 1, "channel": "private-a", "event": ""}, 4409),
        ({"op": "whisper", "id": 1, "channel": "private-a", "event": "x" * 65}, 4409),
        ({"op": "whisper", "id": 1, "channel": "private-a", "event": "a:b"}, 4409),
        ({"op": "whisper", "id": 1, "channel": "a b", "event": "e"}, 4422),
        ({"op": "whisper", "id": 1, "event": "e"}, 4409),
        (
            {"op": "whisper", "id": 1, "channel": "private-a", "event": "e", "data": "x" * 4095},
            4413,
        ),
        ({"op": "call", "id": 1, "route": "", "verb": "v"}, 4409),
        ({"op": "call", "id": 1, "route": "r", "verb": "v", "args": "x"}, 4409),
        ({"op": "call", "route": "r", "verb": "v"}, 4409),
    ],
)
def test_bad_whispers_and_calls(frame: dict[str, object], code: int) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(json.dumps(frame), 100_000)
    assert info.value.code == code


def test_whisper_data_limit_is_4_kib_of_utf8() -> None:
    fits = "x" * 4094  # plus two quotes: 4096 bytes
    frame = {"op": "whisper", "id": 1, "channel": "private-a", "event": "e", "data": fits}
    assert parse_request(json.dumps(frame), 100_000).data_json == json.dumps(fits)
    frame["data"] = "é" * 2048  # 4096 bytes of UTF-8 plus quotes
    with pytest.raises(ProtocolError):
        parse_request(json.dumps(frame), 100_000)


def test_frame_payloads_splits_frames_written_back_to_back() -> None:
    # Payload sizes on both sides of each header-length boundary (125/126, 65535/65536).
    payloads = [b"", b"a", b"b" * 125, "é".encode() * 63, b"c" * 126, b"d" * 65535, b"e" * 65536]
    joined = b"".join(websocket_text_frame(payload) for payload in payloads)
    assert frame_payloads(joined) == payloads
    assert frame_payloads(bytearray(joined)) == payloads
