"""Hostile input over real sockets: DNS rebinding, RFC 6455 failures, oversize and deep frames."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
from collections.abc import Callable
from typing import Any

import pytest

from rtbridge.messages import Message
from rtbridge.server import Server
from tests.server.helpers import Client, eventually
from tests.server.rawsocket import RawSocket, encode_frame, mask_fast

MakeServer = Callable[..., Server]


# 1. The Host and Origin rule ----------------------------------------------------------------


@pytest.fixture
def rebinding_settings(settings: Any) -> None:
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["app.example", "127.0.0.1", "localhost"]


@pytest.mark.parametrize(
    "allowed_origins", [None, ["https://app.example"], "*"], ids=["derived", "list", "any"]
)
@pytest.mark.parametrize("with_port", [True, False])
async def test_dns_rebinding_is_refused_in_every_mode(
    make_server: MakeServer, rebinding_settings: None, allowed_origins: Any, with_port: bool
) -> None:
    server = make_server(allowed_origins=allowed_origins)
    host = f"evil.example:{server.port}" if with_port else "evil.example"
    # The attacker's page: its own name resolves to this server, so Origin and Host agree.
    status, sock = await RawSocket.handshake(server.port, host=host, origin=f"http://{host}")
    sock.close()
    assert status == 403
    # A client without Origin (not a browser) is held to ALLOWED_HOSTS too, as Django does.
    status, sock = await RawSocket.handshake(server.port, host=host)
    sock.close()
    assert status == 403
    # The real site still connects.
    status, sock = await RawSocket.handshake(
        server.port, host="app.example", origin="https://app.example"
    )
    sock.close()
    assert status == 101
    assert server.stats.refused == 2


async def test_same_origin_needs_a_named_host_with_an_origin_list(
    make_server: MakeServer, settings: Any
) -> None:
    settings.ALLOWED_HOSTS = ["*"]  # "a proxy checks the host"
    server = make_server(allowed_origins=["https://app.example"])
    host = f"evil.example:{server.port}"
    status, sock = await RawSocket.handshake(server.port, host=host, origin=f"http://{host}")
    sock.close()
    assert status == 403
    status, sock = await RawSocket.handshake(
        server.port, host="anything.example", origin="https://app.example"
    )
    sock.close()
    assert status == 101


# 2. Slow consumers get their close frame ----------------------------------------------------


async def _subscribe_raw(sock: RawSocket, channel: str) -> None:
    await sock.send_text(json.dumps({"op": "subscribe", "id": 1, "channel": channel}))
    while True:
        frame = await sock.frame()
        if json.loads(frame.payload).get("op") == "ack":
            return


async def test_a_slow_consumer_gets_whole_frames_then_close_4002(make_server: MakeServer) -> None:
    server = make_server(options={"max_buffer_bytes": 256 * 1024})
    status, slow = await RawSocket.handshake(server.port, receive_buffer=65536, read_ahead=65536)
    assert status == 101
    await slow.frame()  # welcome
    await _subscribe_raw(slow, "firehose")
    fast = await Client.open(server.url)
    await fast.subscribe("firehose")
    pad = "é" * 20_000  # 40 KB frames
    count = 200  # 8 MB: far more than the kernel buffers and the limit together
    received: list[int] = []
    seen: list[int] = []

    async def read_fast() -> None:
        while len(received) < count:
            received.append((await fast.recv_op("message", timeout=10))["data"]["n"])

    async def read_slowly() -> Any:
        # Slower than the publisher, so it falls behind by the limit.
        while True:
            frame = await slow.frame(timeout=10)
            if frame.opcode == 0x8:
                return frame
            assert frame.opcode == 0x1 and frame.fin
            body = json.loads(frame.payload)
            if body["op"] == "heartbeat":
                continue  # the heartbeat wheel gives each socket its first one at any moment
            seen.append(body["data"]["n"])
            # ~400 KB/s: the kernel's buffers (MBs on loopback) take it ~10 s to read after
            # the 4002, longer than Tornado's own 5 s wait for the closing handshake.
            await asyncio.sleep(0.1)

    reading = asyncio.create_task(read_fast())
    slow_reading = asyncio.create_task(read_slowly())
    for number in range(count):
        server.publish(Message("firehose", "chunk", {"n": number, "pad": pad}))
        if number % 5 == 4:
            # The healthy reader keeps up within the limit.
            await eventually(lambda n=number: len(received) >= n - 2, timeout=20)
    await asyncio.wait_for(reading, 30)
    assert received == list(range(count))
    assert server.stats.slow_consumers == 1
    # The slow one got whole frames in order, then the close frame, then EOF.
    close = await asyncio.wait_for(slow_reading, 60)
    assert close.close_code == 4002
    assert "slow consumer" in close.close_reason
    assert seen == list(range(len(seen))) and 0 < len(seen) < count
    await slow.send(encode_frame(0x8, struct.pack("!H", 4002)))
    assert await slow.end() == "eof"
    slow.close()
    await fast.close()


# 4-5. RFC 6455 failures: a close frame with the right code, then a clean TCP close -------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        pytest.param(encode_frame(0x1, b'{"op":"ping","id":1,"x":"\xff\xfe"}'), 1007, id="utf8"),
        pytest.param(encode_frame(0x3, b"x"), 1002, id="reserved-opcode"),
        pytest.param(encode_frame(0xB, b""), 1002, id="reserved-control-opcode"),
        pytest.param(encode_frame(0x1, b"{}", rsv=0x40), 1002, id="rsv1"),
        pytest.param(encode_frame(0x1, b"{}", rsv=0x10), 1002, id="rsv3"),
        pytest.param(encode_frame(0x9, b"x" * 126), 1002, id="oversize-ping"),
        pytest.param(encode_frame(0x9, b"x", fin=False), 1002, id="fragmented-ping"),
        pytest.param(encode_frame(0x0, b"orphan"), 1002, id="orphan-continuation"),
        pytest.param(
            encode_frame(0x1, b"{", fin=False) + encode_frame(0x1, b"}"), 1002, id="interleaved"
        ),
        pytest.param(encode_frame(0x1, b'{"op":"ping","id":1}', masked=False), 1002, id="unmasked"),
    ],
)
async def test_protocol_errors_get_a_close_frame(
    make_server: MakeServer, frame: bytes, code: int
) -> None:
    server = make_server()
    status, sock = await RawSocket.handshake(server.port)
    assert status == 101
    await sock.frame()  # welcome
    await sock.send(frame)
    close = await sock.close_frame()
    assert close.close_code == code, close
    assert await sock.end() == "eof"
    sock.close()
    await eventually(lambda: server.stats.protocol_failures == 1)
    await eventually(lambda: server.hub.open_sockets == 0)


@pytest.mark.parametrize("size", [100_000, 1_000_000])
async def test_far_oversize_frames_get_1009_not_a_reset(make_server: MakeServer, size: int) -> None:
    server = make_server(options={"max_frame_bytes": 4096})
    status, sock = await RawSocket.handshake(server.port)
    assert status == 101
    await sock.frame()
    mask = os.urandom(4)
    header = encode_frame(0x1, b"", length=size)[:-4]  # the header with the length, no mask
    payload = json.dumps({"op": "ping", "id": 1, "pad": "x" * size})[:size].encode()
    sending = asyncio.create_task(sock.send(header + mask + mask_fast(payload, mask)))
    close = await sock.close_frame()
    assert close.close_code == 1009
    assert str(4 * 4096) in close.close_reason
    assert await sock.end() == "eof"
    await asyncio.wait_for(sending, 5)
    sock.close()


async def test_a_frame_just_over_the_limit_is_an_error_frame(make_server: MakeServer) -> None:
    server = make_server(options={"max_frame_bytes": 4096})
    client = await Client.open(server.url)
    await client.send({"op": "ping", "id": 1, "pad": "x" * 5000})
    assert (await client.recv_op("error"))["code"] == 4413
    await client.close()


# 3. Deep JSON and strict JSON ---------------------------------------------------------------


async def test_deep_nesting_is_refused_with_one_warning_and_no_traceback(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_server()
    client = await Client.open(server.url)
    deep = '{"op":"ping","id":1,"x":' + "[" * 2000 + "]" * 2000 + "}"
    with caplog.at_level(logging.DEBUG, logger="rtbridge.server"):
        for _ in range(5):
            await client.send(deep)
            error = await client.recv_op("error")
            assert error["code"] == 4400
            assert "deeper than 32 levels" in error["reason"]
        # Deep values in unknown keys are still ignored up to the limit.
        nested = "[" * 31 + "]" * 31
        await client.send('{"op":"ping","id":7,"unknown":' + nested + "}")
        assert await client.recv_op("pong") == {"op": "pong", "id": 7}
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "deeper than 32" in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
    await client.close()


async def test_max_json_depth_is_a_setting(make_server: MakeServer) -> None:
    server = make_server(options={"max_json_depth": 4})
    client = await Client.open(server.url)
    await client.send('{"op":"ping","id":1,"x":[[[]]]}')
    assert (await client.recv_op("pong"))["id"] == 1
    await client.send('{"op":"ping","id":2,"x":[[[[]]]]}')
    assert (await client.recv_op("error"))["code"] == 4400
    await client.close()


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_are_not_json(make_server: MakeServer, constant: str) -> None:
    server = make_server()
    client = await Client.open(server.url)
    await client.send('{"op":"ping","id":1,"x":' + constant + "}")
    error = await client.recv_op("error")
    assert error["code"] == 4400
    assert constant.lstrip("-") in error["reason"]
    await client.close()


def test_raw_socket_helper_speaks_websocket() -> None:
    # The hand-written frames are valid WebSocket frames: a header, a mask, the payload.
    frame = encode_frame(0x1, b"hi")
    assert frame[0] == 0x81 and frame[1] == 0x82 and len(frame) == 8
    mask = frame[2:6]
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(frame[6:])) == b"hi"
    assert mask_fast(b"hello", b"\x01\x02\x03\x04") == bytes(
        b ^ m for b, m in zip(b"hello", b"\x01\x02\x03\x04\x01", strict=True)
    )
