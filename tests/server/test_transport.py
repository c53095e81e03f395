"""Both ways of writing frames (direct to Tornado's stream, or ``write_message``) agree."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from rtbridge.messages import Message
from rtbridge.server import Server
from rtbridge.server.handler import SocketHandler
from rtbridge.server.transport import DirectTransport, MessageTransport
from tests.server.helpers import Client, eventually, join
from tests.server.test_server import _stalled_socket

MakeServer = Callable[..., Server]


async def _session(server: Server) -> tuple[list[str], type]:
    """Drive one scripted session; return every frame after the welcome, as raw text."""
    client = await Client.open(server.url)
    other = await Client.open(server.url)
    transport = type(server.hub.connections[client.socket_id].transport)
    await client.subscribe("room")
    await join(client, "private-room", "1")
    await join(other, "private-room", "2")
    await other.request("whisper", channel="private-room", event="typing", data={"é": [1, 2]})
    server.publish(Message("room", "small", {"text": "héllo ✓"}))
    server.publish(Message("room", "big", {"pad": "ü" * 40_000}))  # > 64 KiB as UTF-8
    server.publish(Message("room", "mine", 1, exclude=client.socket_id))  # a skip frame
    for number in range(30):  # a burst, written together at the end of the loop's turn
        server.publish(Message("room", "burst", number))
    frames: list[str] = []
    while len(frames) < 1 + 3 + 30:  # the whisper, small, big and skip, the burst
        text = await asyncio.wait_for(client.socket.recv(), 5)
        assert isinstance(text, str)
        if '"op":"heartbeat"' not in text:
            frames.append(text)
    await client.close()
    await other.close()
    return frames, transport


def _any_epoch(frame: str) -> str:
    return re.sub(r'"epoch":"[^"]+"', '"epoch":"E"', frame)


async def test_write_message_fallback_sends_the_same_frames(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct, direct_transport = await _session(make_server())
    # Offering compression is one of the direct path's preconditions failing for real: the
    # client negotiates permessage-deflate and Tornado compresses every frame itself.
    monkeypatch.setattr(SocketHandler, "get_compression_options", lambda self: {})
    fallback, fallback_transport = await _session(make_server())
    assert (direct_transport, fallback_transport) == (DirectTransport, MessageTransport)
    # Each server numbers "room" in an epoch of its own; everything else is byte for byte.
    assert [_any_epoch(frame) for frame in fallback] == [_any_epoch(frame) for frame in direct]
    assert [f for f in direct if '"event":"burst"' in f][-1].endswith('"data":29}')


async def test_write_message_fallback_still_disconnects_a_slow_consumer(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rtbridge.server.handler.transport_for", MessageTransport)
    server = make_server(options={"max_buffer_bytes": 256 * 1024})
    reader = await Client.open(server.url)
    await reader.subscribe("firehose")
    stalled = _stalled_socket(server.port, server.config.path)
    await eventually(lambda: server.hub.subscribers("firehose") == 2)
    count = 1000  # 20 MB: far more than the kernel buffers and the 256 KiB limit together
    for number in range(count):
        # One small frame at a time: the fallback counts a write until its future is done, a
        # loop turn or two after the kernel took it, so the healthy reader's count is a few
        # frames; a burst, or frames near the limit, would count as unsent here.
        server.publish(Message("firehose", "chunk", {"n": number, "pad": "x" * 20_000}))
        assert (await reader.messages(1, timeout=20))[0]["seq"] == number + 1
    assert server.hub.stats.slow_consumers == 1
    assert server.hub.subscribers("firehose") == 1
    stalled.close()
    await reader.close()
