"""One client connection: its subscriptions, limits and the handling of each request frame."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Protocol

from ..channel_names import is_protected
from .protocol import (
    CloseCode,
    ErrorCode,
    ProtocolError,
    Request,
    ack_frame,
    error_frame,
    parse_request,
    pong_frame,
)

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["Connection", "Transport"]

logger = logging.getLogger("rtbridge.server")

#: Queued bytes that make a connection write at once instead of at the end of the turn.
FLUSH_BYTES = 64 * 1024

PROTECTED_REASON = (
    "private and presence channels need the auth endpoint, which is not available yet; "
    "subscribe to a public channel"
)


class Transport(Protocol):
    """What a connection needs from the socket under it (the Tornado handler provides it)."""

    def write_frame(self, frame: bytes) -> None:
        """Write one complete WebSocket frame; raise on a closed socket."""

    def pending_bytes(self) -> int:
        """Return the bytes written but not yet accepted by the kernel."""

    def close_socket(self, code: int, reason: str) -> None:
        """Start the WebSocket closing handshake with ``code`` and ``reason``."""


class Connection:
    """The protocol state of one socket; every method is called on the server's event loop."""

    __slots__ = (
        "abuse",
        "channels",
        "closed",
        "hub",
        "last_activity",
        "opened_at",
        "pending",
        "pending_size",
        "remote",
        "socket_id",
        "transport",
    )

    def __init__(self, hub: Hub, transport: Transport, socket_id: str, remote: str = "") -> None:
        self.hub = hub
        self.transport = transport
        self.socket_id = socket_id
        self.remote = remote
        self.channels: set[str] = set()
        self.opened_at = self.last_activity = time.monotonic()
        #: Bad frames in a row; at ``abuse_threshold`` the socket is closed with 4001.
        self.abuse = 0
        self.closed = False
        # Frames queued during this turn of the event loop; the hub flushes them together at
        # the end of the turn, so a burst of messages costs one socket write, not one each.
        self.pending: list[bytes] | None = None
        self.pending_size = 0

    def send(self, frame: bytes) -> bool:
        """Queue ``frame`` unless the outbound buffer would pass its limit (then close 4002)."""
        if self.closed:
            return False
        size = self.pending_size + len(frame)
        if size + self.transport.pending_bytes() > self.hub.config.max_buffer_bytes:
            self.hub.stats.slow_consumers += 1
            self.close(
                CloseCode.SLOW_CONSUMER,
                f"slow consumer: more than {self.hub.config.max_buffer_bytes} bytes unsent",
            )
            return False
        self.pending_size = size
        if self.pending is None:
            self.pending = [frame]
            self.hub.schedule_flush(self)
        else:
            self.pending.append(frame)
        if size >= FLUSH_BYTES:
            # Big bursts go to the kernel now rather than wait in the queue; otherwise one
            # burst larger than max_buffer_bytes would look like a slow consumer.
            self.flush()
        return True

    def flush(self) -> None:
        """Write the queued frames in one go."""
        frames, self.pending, self.pending_size = self.pending, None, 0
        if not frames or self.closed:
            return
        try:
            self.transport.write_frame(frames[0] if len(frames) == 1 else b"".join(frames))
        except Exception:  # the stream closed under us; on_close will clean up
            self.closed = True

    def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` after the queued frames; later sends are dropped."""
        if self.closed:
            return
        logger.debug("rtbridge: closing %s (%s): %d %s", self.socket_id, self.remote, code, reason)
        if code == CloseCode.SLOW_CONSUMER:
            self.pending, self.pending_size = None, 0
        else:
            self.flush()  # e.g. the error frame that explains a 4001 goes out first
        # Leave the hub now: the closing handshake may take seconds (a stalled client never
        # answers), and meanwhile nothing must be routed or buffered for this socket.
        self.hub.remove(self)
        self.closed = True
        try:
            self.transport.close_socket(code, reason[:120])
        except Exception:  # already closed: nothing left to tell the client
            logger.debug("rtbridge: %s was already closed", self.socket_id)

    async def handle(self, raw: str | bytes) -> None:
        """Serve one frame from the client; never raises."""
        if self.closed:
            return  # frames that arrive during the closing handshake are ignored
        self.last_activity = time.monotonic()
        try:
            request = parse_request(raw, self.hub.config.max_frame_bytes)
            await self._serve(request)
        except ProtocolError as exc:
            self._refuse(exc)
        except Exception:
            # A bug must cost this one request, not the socket or the server.
            logger.exception("rtbridge: error serving a frame from %s", self.socket_id)
            self.send(error_frame(None, ErrorCode.BAD_FRAME, "internal error serving this frame"))
        else:
            self.abuse = 0

    async def _serve(self, request: Request) -> None:
        op = request.op
        if op == "heartbeat":
            return
        if op == "ping":
            self.send(pong_frame(request.id))
            return
        channel = request.channel
        assert channel is not None
        if op == "unsubscribe":
            self.hub.unsubscribe(self, channel)
            self.send(ack_frame(request.id, channel))
            return
        # subscribe
        if is_protected(channel):
            raise ProtocolError(
                ErrorCode.FORBIDDEN, f"channel {channel!r}: {PROTECTED_REASON}", request.id
            )
        if channel not in self.channels and len(self.channels) >= self.hub.config.max_subscriptions:
            raise ProtocolError(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"this connection already has {len(self.channels)} subscriptions, the limit; "
                "unsubscribe from one first",
                request.id,
            )
        seq = await self.hub.subscribe(self, channel)
        self.send(ack_frame(request.id, channel, seq))

    def _refuse(self, exc: ProtocolError) -> None:
        self.hub.stats.errors += 1
        self.abuse += 1
        logger.debug("rtbridge: %s sent a bad frame: %d %s", self.socket_id, exc.code, exc.reason)
        self.send(error_frame(exc.request_id, exc.code, exc.reason))
        if self.abuse >= self.hub.config.abuse_threshold:
            self.hub.stats.abusers += 1
            self.close(CloseCode.ABUSE, f"{self.abuse} bad frames in a row")
