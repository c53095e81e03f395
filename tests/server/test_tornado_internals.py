"""Guard: the Tornado internals ``rtbridge.server.transport.DirectTransport`` uses still work.

If a Tornado release renames or changes one, these tests fail and name it; until
``DirectTransport`` is adapted (or ``tornado`` pinned below that release in pyproject.toml),
the server falls back to ``write_message`` and says so in a warning.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tornado
import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.web
import tornado.websocket

from rtbridge.server.protocol import websocket_text_frame
from rtbridge.server.transport import (
    PROTOCOL_INTERNALS,
    STREAM_INTERNALS,
    DirectTransport,
    MessageTransport,
    ShortQueue,
    direct_path_refusal,
    transport_for,
)
from tests.server.helpers import eventually

RELIES = "rtbridge.server.transport.DirectTransport relies on it"


class Probe(tornado.websocket.WebSocketHandler):
    """Keeps every opened handler, so a test can look at its protocol and stream."""

    opened: list[Probe]
    compression: dict[str, Any] | None = None

    def initialize(self, opened: list[Probe]) -> None:
        self.opened = opened

    def get_compression_options(self) -> dict[str, Any] | None:
        return self.compression

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.opened.append(self)


class CompressingProbe(Probe):
    compression: dict[str, Any] | None = {}


ProbeServer = tuple[int, list[Probe]]


@pytest.fixture
async def probe_server() -> AsyncIterator[ProbeServer]:
    opened: list[Probe] = []
    app = tornado.web.Application(
        [
            ("/plain", Probe, {"opened": opened}),
            ("/deflate", CompressingProbe, {"opened": opened}),
        ]
    )
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    http = tornado.httpserver.HTTPServer(app)
    http.add_sockets(sockets)
    yield sockets[0].getsockname()[1], opened
    http.stop()
    await http.close_all_connections()


def _raw_socket(port: int, path: str) -> socket.socket:
    """Open a WebSocket by hand with a tiny receive buffer (no compression offered)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


async def _opened(port: int, opened: list[Probe], path: str = "/plain") -> tuple[Probe, Any]:
    loop = asyncio.get_running_loop()
    sock = await loop.run_in_executor(None, _raw_socket, port, path)
    await eventually(lambda: len(opened) == 1)
    return opened[0], sock


async def test_every_internal_the_direct_path_reads_is_there(probe_server: ProbeServer) -> None:
    handler, sock = await _opened(*probe_server)
    protocol = handler.ws_connection
    assert isinstance(protocol, tornado.websocket.WebSocketProtocol13), (
        f"Tornado {tornado.version}: handler.ws_connection is {type(protocol).__name__}; {RELIES}"
    )
    for name in PROTOCOL_INTERNALS:
        assert hasattr(protocol, name), (
            f"Tornado {tornado.version}: WebSocketProtocol13 has no {name!r}; {RELIES}"
        )
    stream = protocol.stream
    assert isinstance(stream, tornado.iostream.IOStream)
    for name in STREAM_INTERNALS:
        assert hasattr(stream, name), (
            f"Tornado {tornado.version}: IOStream has no {name!r}; {RELIES}"
        )
    for name in ("_total_write_index", "_total_write_done_index"):
        assert isinstance(getattr(stream, name), int), (
            f"Tornado {tornado.version}: IOStream.{name} is not an int; {RELIES}"
        )
    assert not stream._write_buffer, (
        f"Tornado {tornado.version}: an idle IOStream._write_buffer is not empty (falsy); {RELIES}"
    )
    assert stream._total_write_index == stream._total_write_done_index, (
        f"Tornado {tornado.version}: an idle IOStream's write counters differ; {RELIES}"
    )
    assert direct_path_refusal(handler) is None
    assert isinstance(transport_for(handler), DirectTransport)
    sock.close()


async def test_the_write_counters_measure_what_the_kernel_has_not_taken(
    probe_server: ProbeServer,
) -> None:
    handler, sock = await _opened(*probe_server)
    transport = transport_for(handler)
    assert isinstance(transport, DirectTransport)
    frame = websocket_text_frame(b"x" * 1_000_000)
    for _ in range(8):  # 8 MB to a reader that does not read: most of it stays in Tornado
        transport.write_frames([frame])
    pending = transport.pending_bytes()
    assert 0 < pending <= 8 * len(frame), (
        f"Tornado {tornado.version}: IOStream._total_write_index - _total_write_done_index "
        f"= {pending} after 8 MB to a stalled reader; {RELIES}"
    )
    assert handler.ws_connection is not None
    stream = handler.ws_connection.stream
    assert stream._write_buffer, f"Tornado {tornado.version}: IOStream._write_buffer; {RELIES}"

    def read_all() -> int:
        total = 0
        while total < 8 * len(frame):
            total += len(sock.recv(1 << 20))
        return total

    assert await asyncio.get_running_loop().run_in_executor(None, read_all) == 8 * len(frame)
    await eventually(lambda: transport.pending_bytes() == 0)
    sock.close()


async def test_offered_compression_selects_the_public_path(probe_server: ProbeServer) -> None:
    handler, sock = await _opened(*probe_server, path="/deflate")
    refusal = direct_path_refusal(handler)
    assert refusal is not None and "compression" in refusal
    assert isinstance(transport_for(handler), MessageTransport)
    sock.close()


@pytest.mark.parametrize("missing", ["_write_buffer", "stream"])
async def test_a_missing_internal_falls_back_and_names_it(
    probe_server: ProbeServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    missing: str,
) -> None:
    handler, sock = await _opened(*probe_server)
    protocol = handler.ws_connection
    assert protocol is not None
    # Undone by monkeypatch before the server closes the socket.
    if missing == "stream":
        monkeypatch.delattr(protocol, "stream")
    else:
        monkeypatch.delattr(protocol.stream, missing)
    refusal = direct_path_refusal(handler)
    assert refusal is not None and missing in refusal
    monkeypatch.setattr("rtbridge.server.transport._warned", False)
    with caplog.at_level("WARNING", logger="rtbridge.server"):
        assert isinstance(transport_for(handler), MessageTransport)
    assert missing in caplog.text and "write_message" in caplog.text
    sock.close()


async def test_slim_queues_replace_the_stream_deques_and_keep_writes_working(
    probe_server: ProbeServer,
) -> None:
    handler, sock = await _opened(*probe_server)
    protocol = handler.ws_connection
    assert protocol is not None
    stream = protocol.stream
    for owner, name in ((stream._write_buffer, "_buffers"), (stream, "_write_futures")):
        assert isinstance(getattr(owner, name), collections.deque), (
            f"Tornado {tornado.version}: IOStream's {name} is no longer a deque; "
            "rtbridge.server.transport.slim_stream relies on it"
        )
    transport = transport_for(handler)  # slims the stream
    assert isinstance(stream._write_buffer._buffers, ShortQueue)
    assert isinstance(stream._write_futures, ShortQueue)
    # Through Tornado's own write path, with its futures: 8 MB to a reader that is not
    # reading stays queued (several buffers), then drains in order once it reads.
    frame = websocket_text_frame(b"x" * 1_000_000)
    for _ in range(8):
        transport.write_frames([frame])
    assert len(stream._write_buffer._buffers) > 1
    written = stream.write(websocket_text_frame(b"last"))

    def read_all() -> bytes:
        data = b""
        while not data.endswith(b"last"):
            data += sock.recv(1 << 20)
        return data

    data = await asyncio.get_running_loop().run_in_executor(None, read_all)
    assert data == frame * 8 + websocket_text_frame(b"last")
    await asyncio.wait_for(written, 5)
    assert not stream._write_futures and not stream._write_buffer
    # Tornado's own frames (ping) and closing still work on the slim queues.
    protocol.write_ping(b"p")
    handler.close(1000, "bye")
    await eventually(lambda: stream.closed())
    sock.close()
