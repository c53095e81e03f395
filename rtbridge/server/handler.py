"""The Tornado WebSocket handler: a thin adapter between a socket and a ``Connection``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, Protocol

import tornado.websocket
from django.http.cookie import parse_cookie

from .. import conf
from .connection import Connection, Transport
from .protocol import HEARTBEAT_ANSWER
from .transport import transport_for

__all__ = ["SocketHandler", "SocketHost"]

logger = logging.getLogger("rtbridge.server")


class SocketHost(Protocol):
    """What the handler needs from the server it serves (``Server`` provides it)."""

    def allows_origin(self, origin: str, host: str | None) -> bool:
        """Return whether a page at ``origin`` may open a socket (a refusal is counted)."""

    def trusts_origin(self, origin: str, host: str | None) -> bool:
        """Return whether a page at ``origin`` may act as the visitor (use the session)."""

    def refusal(self) -> tuple[int, str] | None:
        """Return ``(close code, reason)`` if a new socket must be refused now (counted)."""

    def connect(self, transport: Transport, remote: str, session_key: str | None) -> Connection:
        """Return the connection of a new socket, registered and welcomed."""


class SocketHandler(tornado.websocket.WebSocketHandler):
    """Serve one client socket; the protocol itself lives in ``Connection``."""

    server: SocketHost
    connection: Connection | None

    def initialize(self, server: SocketHost) -> None:
        self.server = server
        self.connection = None

    def check_origin(self, origin: str) -> bool:
        """Allow the origins ``RTBRIDGE_ALLOWED_ORIGINS`` allows (HTTP 403 otherwise)."""
        if self.server.allows_origin(origin, self.request.host):
            return True
        logger.debug("rtbridge: refused a socket from origin %r (%s)", origin, self.request.host)
        return False

    def open(self, *args: Any, **kwargs: Any) -> None:
        refusal = self.server.refusal()
        if refusal is not None:
            logger.debug(
                "rtbridge: refused a socket from %s: %s", self.request.remote_ip, refusal[1]
            )
            self.close(*refusal)
            return
        self.set_nodelay(True)
        self.connection = self.server.connect(
            transport_for(self), self.request.remote_ip or "", self._session_key()
        )
        self._forget_handshake()

    def _forget_handshake(self) -> None:
        # The handshake's request and response headers (and cookies) are not read again; an
        # idle socket's memory bounds how many one node holds, and a browser's headers are a
        # kilobyte or more. Public API only: the 101 response has been written already.
        self.request.headers.clear()
        self.clear()
        for name in ("Server", "Content-Type", "Date"):
            self.clear_header(name)

    def _session_key(self) -> str | None:
        cookie_name, _engine = conf.session_settings()
        # Parsed as Django parses it, and not kept (request.cookies would keep every cookie).
        session = parse_cookie(self.request.headers.get("Cookie", "")).get(cookie_name)
        if session is None:
            return None
        origin = self.request.headers.get("Origin")
        if origin and not self.server.trusts_origin(origin, self.request.host):
            # RTBRIDGE_ALLOWED_ORIGINS = "*" lets any page listen to public channels; it must
            # never let a foreign page make calls as the visitor (cross-site hijacking).
            return None
        return session

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
            connection.socket_closed()
            logger.debug(
                "rtbridge: closed %s (%s): %s %s",
                connection.socket_id,
                connection.remote,
                self.close_code,
                self.close_reason or "",
            )
