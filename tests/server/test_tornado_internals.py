"""Guard: the Tornado internals ``rtbridge.server.transport`` uses still work.

If a Tornado release renames or changes one, these tests fail and name it; until
``DirectTransport`` is adapted (or ``tornado`` pinned below that release in pyproject.toml),
the server falls back to ``write_message`` and says so in a warning.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tornado
import tornado.httpserver
import tornado.iostream
import tornado.netutil
import tornado.util
import tornado.web
import tornado.websocket

from rtbridge.server.protocol import websocket_text_frame
from rtbridge.server.transport import (
    PROTOCOL_INTERNALS,
    PROTOCOL_READ_INTERNALS,
    STREAM_INTERNALS,
    DirectTransport,
    MessageTransport,
    ShortQueue,
    StrictProtocol,
    direct_path_refusal,
    strict_protocol,
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


# Reading frames: StrictProtocol ------------------------------------------------------------

STRICT = "rtbridge.server.transport.StrictProtocol relies on it"


def test_tornado_still_reads_frames_through_the_methods_strict_protocol_overrides() -> None:
    # StrictProtocol replaces _receive_frame and routes text through its own _handle_text;
    # if Tornado stopped calling these, bad frames would be handled by Tornado again.
    loop_source = inspect.getsource(tornado.websocket.WebSocketProtocol13._receive_frame_loop)
    assert "self._receive_frame()" in loop_source, (
        f"Tornado {tornado.version}: _receive_frame_loop no longer calls _receive_frame; {STRICT}"
    )
    frame_source = inspect.getsource(tornado.websocket.WebSocketProtocol13._receive_frame)
    for name in (
        "self._read_bytes(",
        "self._handle_message(",
        "self._fragmented_message_buffer",
        "self._fragmented_message_opcode",
        "self._frame_compressed",
        "self._decompressor",
        "self.params.max_message_size",
        "_websocket_mask(",
    ):
        assert name in frame_source, (
            f"Tornado {tornado.version}: _receive_frame no longer uses {name!r}; StrictProtocol "
            f"copies Tornado 6.6's _receive_frame and must be compared with the new one"
        )
    message_source = inspect.getsource(tornado.websocket.WebSocketProtocol13._handle_message)
    for name in ("_DecompressTooLargeError", "self._run_callback(self.handler.on_message"):
        assert name in message_source, (
            f"Tornado {tornado.version}: _handle_message no longer uses {name!r}; {STRICT}"
        )
    assert callable(tornado.util._websocket_mask)
    assert issubclass(tornado.websocket._DecompressTooLargeError, Exception)


class StrictProbe(Probe):
    def get_websocket_protocol(self) -> tornado.websocket.WebSocketProtocol | None:
        return strict_protocol(self, super().get_websocket_protocol())


async def test_the_strict_protocol_replaces_tornados_and_has_what_it_reads() -> None:
    opened: list[Probe] = []
    app = tornado.web.Application([("/strict", StrictProbe, {"opened": opened})])
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    http = tornado.httpserver.HTTPServer(app)
    http.add_sockets(sockets)
    try:
        handler, sock = await _opened(sockets[0].getsockname()[1], opened, "/strict")
        protocol = handler.ws_connection
        assert isinstance(protocol, StrictProtocol), (
            f"Tornado {tornado.version}: get_websocket_protocol() returned "
            f"{type(protocol).__name__}; {STRICT}"
        )
        for name in PROTOCOL_READ_INTERNALS:
            assert hasattr(protocol, name), (
                f"Tornado {tornado.version}: WebSocketProtocol13 has no {name!r}; {STRICT}"
            )
        assert hasattr(protocol.stream.socket, "shutdown")
        assert direct_path_refusal(handler) is None  # the direct writer accepts it too
        sock.close()
    finally:
        http.stop()
        await http.close_all_connections()


def test_another_protocol_is_kept_and_named_once(caplog: pytest.LogCaptureFixture) -> None:
    class Other:
        pass

    with caplog.at_level("WARNING", logger="rtbridge.server"):
        other: Any = Other()
        assert strict_protocol(Any, other) is other  # type: ignore[arg-type]
    assert "Other" in caplog.text and "close frame" in caplog.text
