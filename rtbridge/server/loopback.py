"""Take signed publishes from the project's other processes on 127.0.0.1 (``local`` backend)."""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import logging
import secrets
import time
from pathlib import Path
from typing import Any, Protocol

import tornado.httpserver
import tornado.netutil
import tornado.web

from ..loopback_wire import MAX_AGE, MAX_BODY_BYTES, PATH, Refusal, announce, decode_request
from ..loopback_wire import withdraw as withdraw_rendezvous
from ..messages import Message

__all__ = ["LOOPBACK_ADDRESS", "LoopbackReceiver", "LoopbackTarget"]

logger = logging.getLogger("rtbridge.server")

#: The receiver listens here only: nothing off this machine can reach it.
LOOPBACK_ADDRESS = "127.0.0.1"


class LoopbackTarget(Protocol):
    """Where verified requests go (``Server`` provides it, as for in-process publishes)."""

    def publish(self, message: Message) -> None:
        """Deliver ``message`` to the server's subscribers."""

    def revoke(self, user_id: str, channel: str, revoked_at: float | None = None) -> None:
        """End ``user_id``'s subscriptions to ``channel``."""


class LoopbackReceiver:
    """Listen on 127.0.0.1 for requests signed with ``SECRET_KEY`` and deliver them.

    The rules, each checked in :meth:`receive` before anything is delivered: the peer is a
    loopback address; the request carries no ``Origin`` (browsers always send one, so no
    web page can post here); the body is signed with this project's ``SECRET_KEY`` for this
    receiver (``server_id``), within the last ``MAX_AGE`` seconds; its nonce was not seen
    before (a replay within those seconds is refused too). Once listening, the receiver
    writes the project's rendezvous file (``loopback_wire.announce``) so that publishers
    find its port, and removes it when it stops or the process exits.
    """

    def __init__(self, target: LoopbackTarget) -> None:
        self.target = target
        #: Names this receiver in signed requests (a request for an earlier server is refused).
        self.server_id = secrets.token_hex(8)
        self.port = 0
        self.delivered = 0
        self.refused = 0
        self._http: tornado.httpserver.HTTPServer | None = None
        self._rendezvous: Path | None = None
        self._nonces: dict[str, float] = {}  # nonce → when it may be forgotten

    @property
    def address(self) -> str:
        """Return ``127.0.0.1:<port>``."""
        return f"{LOOPBACK_ADDRESS}:{self.port}"

    async def start(self) -> None:
        """Listen on a free port of 127.0.0.1 and announce it to the project's processes."""
        sockets = tornado.netutil.bind_sockets(0, LOOPBACK_ADDRESS)
        self.port = sockets[0].getsockname()[1]
        app = tornado.web.Application(
            [(PATH, _LoopbackHandler, {"receiver": self})], log_function=lambda handler: None
        )
        self._http = tornado.httpserver.HTTPServer(app, max_body_size=MAX_BODY_BYTES)
        self._http.add_sockets(sockets)
        self._rendezvous = announce(self.port, self.server_id)
        # The autoreloader ends a runserver child with sys.exit(), never through stop().
        atexit.register(self.withdraw)
        logger.info("rtbridge: taking local publishes of this project on %s", self.address)

    def withdraw(self) -> None:
        """Remove the rendezvous file, so publishers stop looking for this receiver."""
        if self._rendezvous is not None:
            withdraw_rendezvous(self._rendezvous)
            self._rendezvous = None

    async def stop(self) -> None:
        """Withdraw the rendezvous and stop listening."""
        self.withdraw()
        atexit.unregister(self.withdraw)
        if self._http is not None:
            self._http.stop()
            with contextlib.suppress(Exception):
                await self._http.close_all_connections()
            self._http = None

    def receive(
        self, body: bytes, peer: str | None, origin: str | None, now: float | None = None
    ) -> tuple[int, dict[str, Any] | None]:
        """Check one request and deliver it; return ``(HTTP status, JSON error or None)``."""
        now = time.time() if now is None else now
        try:
            if not _is_loopback(peer):
                raise Refusal("not_loopback", f"requests from {peer} are refused: loopback only")
            if origin is not None:
                raise Refusal("browser", "requests from web pages (with an Origin) are refused")
            request = decode_request(body, self.server_id, now)
            self._forget_nonces(now)
            if request.nonce in self._nonces:
                raise Refusal("replayed", "this request was already delivered once")
            self._nonces[request.nonce] = now + 2 * MAX_AGE
        except Refusal as refusal:
            self.refused += 1
            logger.warning("rtbridge: refused a local publish from %s: %s", peer, refusal)
            return 403, {"error": {"code": refusal.code, "message": str(refusal)}}
        for message in request.messages:
            self.target.publish(message)
        for revocation in request.revocations:
            self.target.revoke(revocation.user_id, revocation.channel, revocation.revoked_at)
        self.delivered += len(request.messages)
        return 204, None

    def _forget_nonces(self, now: float) -> None:
        expired = [nonce for nonce, until in self._nonces.items() if until < now]
        for nonce in expired:
            del self._nonces[nonce]


def _is_loopback(peer: str | None) -> bool:
    try:
        return peer is not None and ipaddress.ip_address(peer).is_loopback
    except ValueError:
        return False


class _LoopbackHandler(tornado.web.RequestHandler):
    receiver: LoopbackReceiver

    def initialize(self, receiver: LoopbackReceiver) -> None:
        self.receiver = receiver

    def post(self) -> None:
        status, error = self.receiver.receive(
            self.request.body, self.request.remote_ip, self.request.headers.get("Origin")
        )
        self.set_status(status)
        if error is not None:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(error))
