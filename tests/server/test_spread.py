"""Large fan-outs in slices: every connection still gets its frames in the order they were sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from rtbridge.messages import Message
from rtbridge.server import Server, spread
from rtbridge.server.connection import Connection
from rtbridge.server.protocol import ack_frame, frame_payloads
from tests.server.helpers import Client


class RecordingTransport:
    """Takes every frame at once (nothing stays unsent) and keeps them, decoded."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.writes = 0
        #: What the kernel has not taken yet, as the connection asks (a slow reader: large).
        self.unsent = 0

    def write_frames(self, frames: Sequence[bytes | bytearray]) -> None:
        self.writes += 1
        for chunk in frames:
            self.frames.extend(json.loads(payload) for payload in frame_payloads(chunk))

    def pending_bytes(self) -> int:
        return self.unsent

    def close_socket(self, code: int, reason: str) -> None:
        self.frames.append({"op": "closed", "code": code})


async def open_connections(
    server: Server, count: int, channels: tuple[str, ...]
) -> list[tuple[Connection, RecordingTransport]]:
    opened = []
    for _ in range(count):
        transport = RecordingTransport()
        connection = server.connect(transport, "127.0.0.1", None)
        for channel in channels:
            await connection._enter(channel, None)
            server.hub.activate(connection, channel)
        opened.append((connection, transport))
    await flushed(opened)  # the welcomes go out, in slices
    return opened


async def flushed(opened: list[tuple[Connection, RecordingTransport]]) -> None:
    """Run the loop until no connection has frames queued."""
    for _ in range(10_000):
        if not any(connection.pending for connection, _ in opened):
            return
        await asyncio.sleep(0)
    raise AssertionError("frames still queued after 10,000 turns of the loop")


async def settle(server: Server, opened: list[tuple[Connection, RecordingTransport]]) -> int:
    """Run the loop until every fan-out and flush is done; return the turns the fan-outs took."""
    turns = 0
    while server.hub.spreader.pending:
        await asyncio.sleep(0)
        turns += 1
    await flushed(opened)
    return turns


def ops(transport: RecordingTransport, channel: str) -> list[tuple[str, Any]]:
    return [
        (frame["op"], frame.get("seq") if frame["op"] != "ack" else frame["id"])
        for frame in transport.frames
        if frame.get("channel") == channel
    ]


async def test_a_large_fan_out_is_handed_over_in_slices_and_keeps_every_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spread, "SPREAD_SLICE_SECONDS", 0.0)  # one clock check per slice
    server = Server(port=0)
    await server.broker.start(server.hub)
    inline = spread.SPREAD_INLINE
    opened = await open_connections(server, inline + 700, ("big", "small"))
    spreader = server.hub.spreader
    publish = server.broker.publish
    publish(Message("big", "tick", {"n": 1}))
    # Only the first slice has the frame queued; every other connection waits for it.
    queued = sum(1 for connection, _ in opened if connection.pending)
    assert queued == inline
    held = [connection for connection, _ in opened if spreader.waits(connection) == 1]
    assert len(held) == 700
    # Meanwhile: the next message on the same channel, one on another channel, an ack to a
    # connection the fan-out has not reached, and a sender's own change (skip frame).
    late_connection = held[-1]
    publish(Message("big", "tick", {"n": 2}))
    publish(Message("small", "tick", {"n": 1}))
    late_connection.send(ack_frame(7, "big"))
    publish(Message("big", "tick", {"n": 3}, exclude=late_connection.socket_id))
    assert await settle(server, opened) > 1  # the fan-outs took several callbacks
    for connection, transport in opened:
        messages = [(op, seq) for op, seq in ops(transport, "big") if op != "ack"]
        if connection is late_connection:
            assert ops(transport, "big") == [
                ("message", 1),
                ("message", 2),
                ("ack", 7),
                ("skip", 3),
            ]
        else:
            assert messages == [("message", 1), ("message", 2), ("message", 3)]
        assert ops(transport, "small") == [("message", 1)]
        # The small channel's message was sent after big's first two: it arrives after them.
        order = [
            (frame["channel"], frame["seq"])
            for frame in transport.frames
            if frame["op"] in ("message", "skip")
        ]
        assert order.index(("small", 1)) > order.index(("big", 2))
        assert spreader.waits(connection) == 0
    assert not spreader.busy


async def test_a_frame_handed_over_later_counts_toward_the_outbound_limit() -> None:
    server = Server(port=0, options={"max_buffer_bytes": 4096})
    await server.broker.start(server.hub)
    opened = await open_connections(server, spread.SPREAD_INLINE + 5, ("big",))
    # The hub's set has no order: whichever connections the fan-out reaches late are slow
    # readers, as seen from the kernel's buffer when their turn comes.
    for _connection, transport in opened:
        transport.unsent = 3000
    server.broker.publish(Message("big", "tick", {"x": "y" * 1500}))
    waiting = [c for c, _ in opened if server.hub.spreader.waits(c)]
    assert len(waiting) == 5 and not any(c.closed for c in waiting)
    await settle(server, opened)
    # 3,000 unsent + a 1.5 KB frame pass 4 KiB: closed as slow consumers when it reached them.
    for connection, transport in opened:
        assert connection.closed
        assert transport.frames[-1] == {"op": "closed", "code": 4002}


async def test_a_connection_that_closes_while_waiting_is_skipped() -> None:
    server = Server(port=0)
    await server.broker.start(server.hub)
    opened = await open_connections(server, spread.SPREAD_INLINE + 3, ("big",))
    server.broker.publish(Message("big", "tick", {"n": 1}))
    spreader = server.hub.spreader
    late = [(c, t) for c, t in opened if spreader.waits(c)]
    late[0][0].close(4000, "bye")
    await settle(server, opened)
    assert [f["op"] for f in late[0][1].frames][-1] == "closed"
    assert not any(f.get("op") == "message" for f in late[0][1].frames)
    for _connection, transport in late[1:]:
        assert [f["data"]["n"] for f in transport.frames if f.get("op") == "message"] == [1]


async def test_real_sockets_get_every_message_in_order_when_the_fan_out_is_sliced(
    make_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spread, "SPREAD_INLINE", 3)
    server = make_server()
    clients = [await Client.open(server.url) for _ in range(12)]
    for client in clients:
        await client.subscribe("room")
    for n in range(40):
        server.publish(Message("room", "said", {"n": n}))
    late = await Client.open(server.url)
    await late.subscribe("room")  # acked between messages: sees only what follows its ack
    for n in range(40, 60):
        server.publish(Message("room", "said", {"n": n}))
    for client in clients:
        frames = await client.messages(60)
        assert [frame["data"]["n"] for frame in frames] == list(range(60))
        assert [frame["seq"] for frame in frames] == list(range(1, 61))
    frames = await late.messages(20)
    assert [frame["data"]["n"] for frame in frames] == list(range(40, 60))
    for client in [*clients, late]:
        await client.close()
