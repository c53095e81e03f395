"""The one module that uses Tornado's WebSocket internals: frame writing and frame reading.

Writing: the hub encodes each frame once and writes the same bytes to every subscriber.
Tornado's public ``write_message`` would frame (and copy) the payload again for each one, so
while its preconditions hold the frames go straight to Tornado's ``IOStream`` instead
(:class:`DirectTransport`). Otherwise :class:`MessageTransport` sends each frame's payload
through ``write_message``.

Reading: Tornado drops the TCP connection without a close frame on every RFC 6455 protocol
error, and on frames far over the size limit (it closes while the client is still sending,
so the kernel answers with a reset). :class:`StrictProtocol` reads frames as Tornado does
and fails the connection as RFC 6455 section 7.1.7 says: a close frame with the code (1002,
1007 or 1009), then the TCP close once the client has read it.

The guard test ``tests/server/test_tornado_internals.py`` names any internal a Tornado
release changes; ``pyproject.toml`` bounds Tornado below the next release it was not run on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any, cast

import tornado.iostream
import tornado.util
import tornado.websocket
from tornado.concurrent import Future

from .connection import Transport
from .protocol import CloseCode, frame_payloads

__all__ = [
    "PROTOCOL_READ_INTERNALS",
    "STREAM_INTERNALS",
    "DirectTransport",
    "MessageTransport",
    "StrictProtocol",
    "direct_path_refusal",
    "slim_stream",
    "strict_protocol",
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
    if handler.get_compression_options() is not None:
        # Compression on (RTBRIDGE_SERVER['compression']): Tornado must frame and deflate
        # each message itself, so the shared pre-encoded frames cannot be used. Expected.
        return MessageTransport(handler)
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

    def write_frames(self, frames: Sequence[bytes | bytearray]) -> Future[None] | None:
        """Write complete frames; return a Future done once Tornado handed the rest to the kernel.

        ``None`` when the kernel took everything at once. Raises ``WebSocketClosedError``
        once the socket is closing.
        """
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
                return None
        # The rest, as a view: Tornado keeps views of large writes, and the connection never
        # changes a batch once it handed it over.
        return stream.write(memoryview(data)[sent:])

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

    def write_frames(self, frames: Sequence[bytes | bytearray]) -> Future[None] | None:
        """Write each frame's payload as a text message; return the last write's Future.

        An item may hold several frames back to back. Raises once the socket is closing.
        """
        future: Future[None] | None = None
        for chunk in frames:
            for payload in frame_payloads(chunk):
                future = self._handler.write_message(payload)
                self._unsent += len(payload)
                future.add_done_callback(self._written(len(payload)))
        return future

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


# Reading frames -------------------------------------------------------------------------------

#: What :class:`StrictProtocol` reads or calls on ``WebSocketProtocol13`` besides its public
#: methods; the guard test checks each one.
PROTOCOL_READ_INTERNALS = (
    "_read_bytes",
    "_handle_message",
    "_write_frame",
    "_run_callback",
    "_decompressor",
    "_frame_compressed",
    "_fragmented_message_buffer",
    "_fragmented_message_opcode",
    "_message_bytes_in",
    "_abort",
    "params",
    "server_terminated",
    "client_terminated",
)

#: The data and control opcodes RFC 6455 defines; every other one is reserved.
_OPCODES = frozenset((0x0, 0x1, 0x2, 0x8, 0x9, 0xA))
#: Seconds a close frame may wait in Tornado's buffer for the kernel to take it.
FAIL_TIMEOUT = 5.0
#: Seconds the client then has to read what the kernel holds, the close frame, and hang up.
LINGER = 30.0


class StrictProtocol(tornado.websocket.WebSocketProtocol13):
    """Tornado's WebSocket protocol, failing bad client frames with a close frame (RFC 6455).

    ``_receive_frame`` is Tornado 6.6's, with each ``_abort()`` (a bare TCP close) replaced
    by :meth:`fail` with the close code RFC 6455 names: 1002 for reserved bits or opcodes,
    unmasked client frames (section 5.1), oversized or fragmented control frames and
    continuations without a message; 1007 for a text message that is not UTF-8; 1009 for a
    message over ``max_message_size``. Everything else is Tornado's own code path.
    """

    # Class-level defaults, set on an instance only when a close or a failure begins: three
    # more instance attributes made Python rebuild the protocol's __dict__ as an unshared
    # table, 1.5 KB more for every idle socket.
    #: The close code this side failed the connection with, if it did.
    failed_with: int | None = None
    # Cuts the connection if the client never finishes a close this side started.
    _closing_deadline: asyncio.TimerHandle | None = None
    _closing: asyncio.Future[None] | None = None

    async def _receive_frame(self) -> None:
        header, mask_payloadlen = await self._read_bytes(2)
        is_final_frame = header & self.FIN
        reserved_bits = header & self.RSV_MASK
        opcode = header & self.OPCODE_MASK
        opcode_is_control = opcode & 0x8
        if self._decompressor is not None and opcode != 0 and not opcode_is_control:
            # The compression flag is in the first frame of a message; control frames are
            # never compressed (RFC 7692 section 6.1), so RSV1 on one is an error below.
            self._frame_compressed = bool(reserved_bits & self.RSV1)
            reserved_bits &= ~self.RSV1
        if reserved_bits:
            await self.fail(CloseCode.PROTOCOL_ERROR, "reserved bits set")
            return
        if opcode not in _OPCODES:
            await self.fail(CloseCode.PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
            return
        if not mask_payloadlen & 0x80:
            await self.fail(CloseCode.PROTOCOL_ERROR, "client frames must be masked")
            return
        payloadlen = mask_payloadlen & 0x7F
        if opcode_is_control and (payloadlen >= 126 or not is_final_frame):
            await self.fail(
                CloseCode.PROTOCOL_ERROR, "control frames must be whole and at most 125 bytes"
            )
            return
        if payloadlen == 126:
            payloadlen = struct.unpack("!H", await self._read_bytes(2))[0]
        elif payloadlen == 127:
            payloadlen = struct.unpack("!Q", await self._read_bytes(8))[0]
        fragments = self._fragmented_message_buffer
        if opcode == 0 and fragments is None:
            await self.fail(CloseCode.PROTOCOL_ERROR, "a continuation frame with no message")
            return
        if opcode in (0x1, 0x2) and fragments is not None:
            await self.fail(CloseCode.PROTOCOL_ERROR, "a new message inside a fragmented one")
            return
        size = payloadlen + (len(fragments) if fragments is not None else 0)
        if size > self.params.max_message_size:
            await self.fail(
                CloseCode.MESSAGE_TOO_BIG,
                f"message of {size} bytes; the limit is {self.params.max_message_size}",
            )
            return
        mask = await self._read_bytes(4)
        data = tornado.util._websocket_mask(mask, await self._read_bytes(payloadlen))
        if opcode == 0:
            assert fragments is not None
            fragments.extend(data)
            if not is_final_frame:
                return
            opcode = cast(int, self._fragmented_message_opcode)
            data = bytes(fragments)
            self._fragmented_message_buffer = None
        elif not is_final_frame and not opcode_is_control:
            self._fragmented_message_opcode = opcode  # type: ignore[assignment]
            self._fragmented_message_buffer = bytearray(data)
            return
        if opcode == 0x1:
            handled = self._handle_text(data)
        elif opcode_is_control:
            # Tornado decompresses whenever the flag is set, and it may still be set by the
            # fragmented message this control frame interrupts.
            compressed, self._frame_compressed = self._frame_compressed, False
            handled = self._handle_message(opcode, data)
            self._frame_compressed = compressed
        else:
            handled = self._handle_message(opcode, data)
        if handled is not None:
            await handled

    def _handle_text(self, data: bytes) -> Future[None] | None:
        # Tornado's text branch of _handle_message, failing with 1007 instead of aborting.
        if self.client_terminated:
            return None
        if self._frame_compressed:
            assert self._decompressor is not None
            try:
                data = self._decompressor.decompress(data)
            except tornado.websocket._DecompressTooLargeError:
                return asyncio.ensure_future(
                    self.fail(CloseCode.MESSAGE_TOO_BIG, "message too big after decompression")
                )
        self._message_bytes_in += len(data)
        try:
            decoded = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return asyncio.ensure_future(
                self.fail(CloseCode.INVALID_PAYLOAD, f"text frame is not UTF-8 ({exc.reason})")
            )
        return self._run_callback(self.handler.on_message, decoded)

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Start the closing handshake; a close this side starts ends as :meth:`_finish` says.

        Tornado's own calls (echoing the client's close, aborting) go to Tornado's ``close``.
        """
        if code is None or self.server_terminated or self.client_terminated or self.stream.closed():
            if self.client_terminated and self._closing_deadline is not None:
                self._closing_deadline.cancel()  # the client answered: the stream closes now
                self._closing_deadline = None
            super().close(code, reason)
            return
        self.server_terminated = True
        if self._ping_coroutine is not None:
            self._ping_coroutine.cancel()
            self._ping_coroutine = None
        self._closing = asyncio.ensure_future(self._finish(code, reason or "", discard_input=False))

    async def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 section 7.1.7): a close frame with ``code``, and no
        more frames read: incoming bytes are dropped until the client hangs up."""
        if self.server_terminated or self.stream.closed():
            self._abort()
            return
        self.failed_with = code
        notify = getattr(self.handler, "protocol_failed", None)
        if notify is not None:
            notify(code, reason)
        self.server_terminated = True
        await self._finish(code, reason, discard_input=True)

    async def _finish(self, code: int, reason: str, *, discard_input: bool) -> None:
        # Tornado waits 5 s for the client's close frame and then cuts the TCP connection,
        # even when its own close frame is still queued behind data the client has not read
        # yet (a slow consumer never gets its 4002). Here the close frame gets FAIL_TIMEOUT
        # seconds to reach the kernel (at most WRITE_AHEAD bytes of whole frames are ahead of
        # it in Tornado's buffer); then the write side is shut, so the kernel delivers the
        # rest, the close frame and a FIN at the client's pace, and the client gets LINGER
        # seconds to read it all and hang up. The socket is read meanwhile (frames parsed, or
        # dropped after a failure), so the kernel never answers with a reset.
        loop = asyncio.get_running_loop()
        deadline = loop.call_later(FAIL_TIMEOUT, self._abort)
        # At most 123 bytes of reason (a control frame holds 125), cut on a character.
        text = reason.encode()[:123].decode("utf-8", "ignore").encode()
        try:
            await self._write_frame(True, 0x8, struct.pack("!H", code) + text)
            deadline.cancel()
            deadline = loop.call_later(LINGER, self._abort)
            if self.stream.closed():
                return  # the client answered (or hung up) already
            self.stream.socket.shutdown(socket.SHUT_WR)
            if discard_input:
                while True:
                    await self.stream.read_bytes(65536, partial=True)
        except (tornado.iostream.StreamClosedError, OSError):
            pass
        finally:
            if discard_input or self.stream.closed():
                deadline.cancel()
                self._abort()
            else:
                # The receive loop reads on; the client's close frame ends it.
                self._closing_deadline = deadline


def strict_protocol(
    handler: tornado.websocket.WebSocketHandler,
    protocol: tornado.websocket.WebSocketProtocol | None,
) -> tornado.websocket.WebSocketProtocol | None:
    """Return a :class:`StrictProtocol` in place of Tornado's ``protocol`` for ``handler``.

    Built from the parameters Tornado chose (ping interval, size limit, compression); any
    other protocol object (a Tornado that changed) is returned as is, with a warning once.
    """
    global _warned_protocol
    if type(protocol) is tornado.websocket.WebSocketProtocol13 and hasattr(protocol, "params"):
        return StrictProtocol(handler, protocol.mask_outgoing, protocol.params)
    if protocol is not None and not _warned_protocol:
        _warned_protocol = True
        logger.warning(
            "rtbridge: Tornado's WebSocket protocol is %s, not WebSocketProtocol13; bad client "
            "frames drop the connection without a close frame. If Tornado changed, check "
            "tests/server/test_tornado_internals.py.",
            type(protocol).__name__,
        )
    return protocol


_warned_protocol = False
