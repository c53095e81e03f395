"""Unit tests of the protocol module: request parsing and server frames."""

from __future__ import annotations

import json
import struct

import pytest

from rtbridge.server.protocol import (
    HEARTBEAT_FRAME,
    ProtocolError,
    Request,
    ack_frame,
    error_frame,
    json_string,
    message_frame,
    parse_request,
    websocket_text_frame,
    welcome_frame,
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
    frame = message_frame(json_string("a.b"), json_string("created"), 7, b'{"t":"\xc3\xa9"}')
    assert body(frame) == {
        "op": "message",
        "channel": "a.b",
        "event": "created",
        "seq": 7,
        "data": {"t": "é"},
    }


def test_other_frames() -> None:
    assert body(HEARTBEAT_FRAME) == {"op": "heartbeat"}
    assert body(ack_frame(3)) == {"op": "ack", "id": 3}
    assert body(ack_frame(3, "c", 0)) == {"op": "ack", "id": 3, "channel": "c", "seq": 0}
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
