"""The Tornado WebSocket handler: a thin adapter between a socket and a ``Connection``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import tornado.iostream
import tornado.websocket

from .. import conf
from .config import OriginPolicy
from .connection import Connection
from .protocol import HEARTBEAT_ANSWER, CloseCode, welcome_frame

if TYPE_CHECKING:
    from .app import Server

__all__ = ["SocketHandler"]

logger = logging.getLogger("rtbridge.server")

#: Allows a page on the socket's own host and port only.
SAME_ORIGIN_ONLY = OriginPolicy(())


class SocketHandler(tornado.websocket.WebSocketHandler):
    """Serve one client socket; the protocol itself lives in ``Connection``."""

    server: Server
    connection: Connection | None

    def initialize(self, server: Server) -> None:
        self.server = server
        self.connection = None

    def check_origin(self, origin: str) -> bool:
        """Allow the origins ``RTBRIDGE_ALLOWED_ORIGINS`` allows (HTTP 403 otherwise)."""
        if self.server.origins.allows(origin, self.request.host):
            return True
        self.server.hub.stats.refused += 1
        logger.debug("rtbridge: refused a socket from origin %r (%s)", origin, self.request.host)
        return False

    def open(self, *args: Any, **kwargs: Any) -> None:
        hub = self.server.hub
        if hub.full:
            hub.stats.refused += 1
            logger.debug("rtbridge: refused a socket from %s: node full", self.request.remote_ip)
            self.close(
                CloseCode.TOO_MANY_CONNECTIONS,
                f"this node has {hub.config.max_connections} connections; try later",
            )
            return
        self.set_nodelay(True)
        cookie_name, _engine = conf.session_settings()
        session = self.request.cookies.get(cookie_name)
        origin = self.request.headers.get("Origin")
        if (
            session is not None
            and origin
            and self.server.origins.any_origin
            and not SAME_ORIGIN_ONLY.allows(origin, self.request.host)
        ):
            # RTBRIDGE_ALLOWED_ORIGINS = "*" lets any page listen to public channels; it must
            # never let a foreign page make calls as the visitor (cross-site hijacking).
            session = None
        connection = Connection(
            hub,
            self,
            self.server.next_socket_id(),
            self.request.remote_ip or "",
            session_key=session.value if session is not None else None,
        )
        self.connection = connection
        hub.add(connection)
        logger.debug("rtbridge: opened %s from %s", connection.socket_id, connection.remote)
        connection.send(
            welcome_frame(
                connection.socket_id,
                hub.config.heartbeat,
                self.server.software,
                self.server.features,
            )
        )

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        # Tornado reads the next frame only after the returned awaitable is done, so requests
        # stay in order.
        connection = self.connection
        if connection is None:
            return None
        if message == HEARTBEAT_ANSWER and not connection.closed:
            # Every client answers every heartbeat at about the same moment: answer them
            # without the Task and Futures a coroutine costs (measured: ~18% of a cycle).
            connection.heartbeat_received()
            return None
        return connection.handle(message)

    def on_close(self) -> None:
        connection = self.connection
        if connection is not None:
            self.server.hub.socket_closed(connection)
            logger.debug(
                "rtbridge: closed %s (%s): %s %s",
                connection.socket_id,
                connection.remote,
                self.close_code,
                self.close_reason or "",
            )

    # Transport for Connection: the frames arrive fully encoded and are written as they are.

    def write_frame(self, frame: bytes) -> None:
        """Write a complete WebSocket frame to the stream (raises when it is closed)."""
        protocol = self.ws_connection
        stream = protocol.stream if protocol is not None else None
        if protocol is None or stream is None or protocol.is_closing():
            raise tornado.websocket.WebSocketClosedError()
        # Fast path: with nothing queued in Tornado, hand the bytes to the kernel directly
        # and skip the Future Tornado makes per write. Anything unsent, and every error,
        # goes through Tornado's own path, which buffers it or closes the stream.
        if type(stream) is tornado.iostream.IOStream and not stream._write_buffer:
            try:
                sent = stream.socket.send(frame)
            except OSError:
                sent = 0
            if sent == len(frame):
                return
            frame = frame[sent:]
        stream.write(frame)

    def pending_bytes(self) -> int:
        """Return the bytes Tornado holds for this socket that the kernel has not taken yet."""
        protocol = self.ws_connection
        stream = getattr(protocol, "stream", None)
        if stream is None:
            return 0
        # Tornado has no public counter of unsent bytes; these two are stable since 5.0.
        return stream._total_write_index - stream._total_write_done_index

    def close_socket(self, code: int, reason: str) -> None:
        """Start the closing handshake."""
        self.close(code, reason)
