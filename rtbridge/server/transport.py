"""Writing pre-encoded frames to a Tornado WebSocket: a direct path and the public fallback.

The hub encodes each frame once and writes the same bytes to every subscriber. Tornado's
public ``write_message`` would frame (and copy) the payload again for each one, so while
its preconditions hold the frames go straight to Tornado's ``IOStream`` instead
(:class:`DirectTransport`, the only code in rtbridge that uses Tornado internals; the guard
test ``tests/server/test_tornado_internals.py`` names any that a Tornado release changes).
Otherwise :class:`MessageTransport` sends each frame's payload through ``write_message``.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

import tornado.iostream
import tornado.websocket
from tornado.concurrent import Future

from .connection import Transport
from .protocol import frame_payloads

__all__ = [
    "STREAM_INTERNALS",
    "DirectTransport",
    "MessageTransport",
    "direct_path_refusal",
    "slim_stream",
    "transport_for",
]

logger = logging.getLogger("rtbridge.server")

#: What the direct path reads: the handler's protocol and its stream (public names Tornado
#: does not document), and the stream's private write buffer and counters (stable since 5.0).
PROTOCOL_INTERNALS = ("stream",)
STREAM_INTERNALS = (
    "socket",
    "_write_buffer",
    "_total_write_index",
    "_total_write_done_index",
    "_write_futures",
)

_warned = False


def direct_path_refusal(handler: tornado.websocket.WebSocketHandler) -> str | None:
    """Return why frames cannot go straight to ``handler``'s stream, or ``None`` if they can.

    Preconditions: Tornado's own protocol object with its stream; no compression offered
    (``get_compression_options()`` is ``None``, Tornado's default, so permessage-deflate
    is never negotiated and uncompressed frames are exactly what Tornado would write); and
    every stream attribute the direct path reads.
    """
    if handler.get_compression_options() is not None:
        return "compression is offered (get_compression_options() is not None)"
    protocol = handler.ws_connection
    if not isinstance(protocol, tornado.websocket.WebSocketProtocol13):
        return f"the protocol is {type(protocol).__name__}, not WebSocketProtocol13"
    missing = [name for name in PROTOCOL_INTERNALS if not hasattr(protocol, name)]
    stream = getattr(protocol, "stream", None)
    if not isinstance(stream, tornado.iostream.IOStream):
        return f"the stream is {type(stream).__name__}, not an IOStream" + (
            f" (WebSocketProtocol13 has no {', '.join(missing)})" if missing else ""
        )
    missing = [name for name in STREAM_INTERNALS if not hasattr(stream, name)]
    if missing:
        return f"IOStream has no {', '.join(missing)}"
    return None


class ShortQueue(list[Any]):
    """A list with ``popleft()``: what Tornado asks of the queues it keeps per stream."""

    __slots__ = ()

    def popleft(self) -> Any:
        """Remove and return the first item (the queues hold a few at most: O(n) is fine)."""
        return self.pop(0)


def slim_stream(stream: tornado.iostream.IOStream) -> None:
    """Give ``stream`` smaller queues: two empty deques are 1.5 KB of every idle socket.

    ``IOStream`` keeps its pending writes and their futures in ``collections.deque``s, 760
    bytes each even when empty, and uses only ``append``, ``popleft``, indexing, iteration,
    ``clear`` and truth on them; a ``ShortQueue`` does all that in 56 bytes. Only fresh,
    empty deques are replaced (checked by tests/server/test_tornado_internals.py).
    """
    buffer = stream._write_buffer
    for owner, name in ((buffer, "_buffers"), (stream, "_write_futures")):
        queue = getattr(owner, name, None)
        if isinstance(queue, collections.deque) and not queue:
            setattr(owner, name, ShortQueue())


def transport_for(handler: tornado.websocket.WebSocketHandler) -> Transport:
    """Return the direct transport when its preconditions hold, else the public one (logged)."""
    global _warned
    refusal = direct_path_refusal(handler)
    if refusal is None:
        protocol = cast(tornado.websocket.WebSocketProtocol13, handler.ws_connection)
        slim_stream(protocol.stream)
        return DirectTransport(handler, protocol.stream)
    if not _warned:
        _warned = True
        logger.warning(
            "rtbridge: writing frames through Tornado's write_message (slower): %s. If Tornado "
            "changed, check tests/server/test_tornado_internals.py.",
            refusal,
        )
    return MessageTransport(handler)


class DirectTransport:
    """Write pre-encoded frames to the handler's ``IOStream``, to the kernel when it can.

    With nothing queued in Tornado, a plain (not TLS) stream hands the bytes to the socket
    directly and skips the Future Tornado makes per write; anything unsent, and every error,
    goes through ``IOStream.write``, which buffers it or closes the stream.
    """

    __slots__ = ("_handler", "_plain", "_protocol", "_stream")

    def __init__(
        self, handler: tornado.websocket.WebSocketHandler, stream: tornado.iostream.IOStream
    ) -> None:
        self._handler = handler
        # The protocol outlives the handler's reference to it (dropped once closed), and
        # then reports itself closing, as it should.
        self._protocol = cast(tornado.websocket.WebSocketProtocol13, handler.ws_connection)
        self._stream = stream
        # SSLIOStream (a subclass) must encrypt: its bytes never go to the socket directly.
        self._plain = type(stream) is tornado.iostream.IOStream

    def write_frames(self, frames: Sequence[bytes | bytearray]) -> None:
        """Write complete frames (raises ``WebSocketClosedError`` once the socket is closing)."""
        if self._protocol.is_closing():
            raise tornado.websocket.WebSocketClosedError()
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        stream = self._stream
        sent = 0
        # Nothing of ours or Tornado's own (a pong, a close frame) waits in its buffer: the
        # counters are equal. Two integers, where the buffer's len() is a Python call.
        if self._plain and stream._total_write_index == stream._total_write_done_index:
            try:
                sent = stream.socket.send(data)
            except OSError:
                sent = 0
            if sent == len(data):
                return
        # The rest, as a view: Tornado keeps views of large writes, and the connection never
        # changes a batch once it handed it over.
        stream.write(memoryview(data)[sent:])

    def pending_bytes(self) -> int:
        """Return the bytes Tornado holds for this socket that the kernel has not taken yet."""
        # Tornado has no public counter of unsent bytes.
        stream = self._stream
        return stream._total_write_index - stream._total_write_done_index

    def close_socket(self, code: int, reason: str) -> None:
        """Start the closing handshake."""
        self._handler.close(code, reason)


class MessageTransport:
    """Send each frame's payload with Tornado's public ``write_message`` (the fallback).

    Tornado frames it again (and compresses it if negotiated). Unsent bytes are counted from
    the write futures: a write counts until its future is done, a loop turn or two after
    Tornado handed all of it to the kernel. That is stricter than the direct path for a burst
    written within one turn (all of it counts), never looser.
    """

    __slots__ = ("_handler", "_unsent")

    def __init__(self, handler: tornado.websocket.WebSocketHandler) -> None:
        self._handler = handler
        self._unsent = 0

    def write_frames(self, frames: Sequence[bytes | bytearray]) -> None:
        """Write each frame's payload as a text message (raises once the socket is closing)."""
        for chunk in frames:
            for payload in frame_payloads(chunk):
                future = self._handler.write_message(payload)
                self._unsent += len(payload)
                future.add_done_callback(self._written(len(payload)))

    def _written(self, size: int) -> Callable[[Future[None]], None]:
        def done(future: Future[None]) -> None:
            self._unsent -= size
            if not future.cancelled():
                # A failed write means the socket closed; on_close cleans up. Retrieving
                # the exception keeps asyncio from logging it as never retrieved.
                future.exception()

        return done

    def pending_bytes(self) -> int:
        """Return the bytes given to ``write_message`` that Tornado has not finished writing."""
        return self._unsent

    def close_socket(self, code: int, reason: str) -> None:
        """Start the closing handshake."""
        self._handler.close(code, reason)
