"""The Tornado WebSocket handler: a thin adapter between a socket and a ``Connection``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, Protocol

import tornado.httputil
import tornado.web
import tornado.websocket
from django.http.cookie import parse_cookie

from .. import conf
from .connection import Connection, Transport
from .logs import event
from .protocol import HEARTBEAT_ANSWER
from .transport import strict_protocol, transport_for

__all__ = ["SocketHandler", "SocketHost"]

logger = logging.getLogger("rtbridge.server")


class SocketHost(Protocol):
    """What the handler needs from the server it serves (``Server`` provides it)."""

    def unavailable(self) -> str | None:
        """Return why new sockets are refused with HTTP 503 now (draining), or ``None``."""

    def allows_host(self, host: str | None) -> bool:
        """Return whether the ``Host`` header passes ``ALLOWED_HOSTS`` (a refusal is counted)."""

    def client_address(self, request: tornado.httputil.HTTPServerRequest) -> str:
        """Return the client's address: the peer's, or a trusted proxy's forwarded one."""

    def compression_options(self) -> dict[str, Any] | None:
        """Return Tornado's permessage-deflate options, or ``None`` to not offer it."""

    def protocol_failed(self, remote: str, code: int, reason: str) -> None:
        """Count (and log) a connection failed for breaking RFC 6455 with close ``code``."""

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
    remote: str

    def initialize(self, server: SocketHost) -> None:
        self.server = server
        self.connection = None
        self.remote = ""

    def prepare(self) -> None:
        """Refuse a handshake before the upgrade: 503 while draining, 403 for a bad ``Host``
        or ``Origin`` (docs/server.md, "Allowed origins")."""
        self.remote = self.server.client_address(self.request)
        reason = self.server.unavailable()
        if reason is not None:
            # Before the upgrade, so a proxy can pass the request to another node.
            raise tornado.web.HTTPError(503, reason=reason)
        host = self.request.host
        if not self.server.allows_host(host):
            logger.debug(
                "rtbridge: refused a socket from %s for Host %r (not in ALLOWED_HOSTS)",
                self.remote,
                host,
                extra=event("socket.refused", peer=self.remote, code=403),
            )
            raise tornado.web.HTTPError(403)
        # Browsers always send Origin; a request without it is not from a web page.
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.server.allows_origin(origin, host):
            logger.debug(
                "rtbridge: refused a socket from %s: origin %r (Host %r)",
                self.remote,
                origin,
                host,
                extra=event("socket.refused", peer=self.remote, code=403),
            )
            raise tornado.web.HTTPError(403)

    def get_compression_options(self) -> dict[str, Any] | None:
        """Offer permessage-deflate when ``RTBRIDGE_SERVER['compression']`` is on."""
        return self.server.compression_options()

    def get_websocket_protocol(self) -> tornado.websocket.WebSocketProtocol | None:
        """Tornado's protocol, failing bad frames with a close frame (see ``transport``)."""
        return strict_protocol(self, super().get_websocket_protocol())

    def protocol_failed(self, code: int, reason: str) -> None:
        """Called by the protocol when it fails the connection with close ``code``."""
        self.server.protocol_failed(self.remote, code, reason)

    def check_origin(self, origin: str) -> bool:
        """Return True: the Origin was checked in :meth:`prepare` already.

        Tornado 6.6 calls this only for requests it cannot tell are same-origin (``Origin``
        equal to ``Host``, or ``Sec-Fetch-Site: same-origin``), and a DNS-rebinding page is
        same-origin by both tests; so the whole rule runs in ``prepare``, on every version.
        """
        return True

    def open(self, *args: Any, **kwargs: Any) -> None:
        refusal = self.server.refusal()
        if refusal is not None:
            logger.debug(
                "rtbridge: refused a socket from %s: %s",
                self.remote,
                refusal[1],
                extra=event("socket.refused", peer=self.remote, code=refusal[0]),
            )
            self.close(*refusal)
            return
        self.set_nodelay(True)
        self.connection = self.server.connect(transport_for(self), self.remote, self._session_key())
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
                extra=event(
                    "socket.closed",
                    socket_id=connection.socket_id,
                    code=self.close_code,
                    peer=connection.remote,
                ),
            )
