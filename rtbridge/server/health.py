"""Probes on the server's port: ``/healthz`` (the process serves) and ``/readyz`` (503 + reason)."""

from __future__ import annotations

import json
from typing import Protocol

import tornado.web

__all__ = ["HealthHandler", "ReadinessSource", "ReadyHandler"]


class ReadinessSource(Protocol):
    """What the readiness probe asks the server (``Server`` provides it)."""

    def readiness(self) -> str | None:
        """Return why this node should get no new sockets now, or ``None`` when it may."""


class _ProbeHandler(tornado.web.RequestHandler):
    """A JSON answer that no cache or proxy keeps."""

    def answer(self, status: int, body: dict[str, str]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(body))

    def head(self) -> None:
        self.get()


class HealthHandler(_ProbeHandler):
    """``GET /healthz``: 200 while the process runs its event loop (liveness)."""

    def get(self) -> None:
        self.answer(200, {"status": "alive"})


class ReadyHandler(_ProbeHandler):
    """``GET /readyz``: 200 when the node accepts sockets and its broker is connected.

    Otherwise 503 with ``{"status": "unavailable", "reason": ...}``: draining (SIGTERM or
    SIGHUP), the broker (Redis) not connected, or ``max_connections`` reached.
    """

    source: ReadinessSource

    def initialize(self, source: ReadinessSource) -> None:
        self.source = source

    def get(self) -> None:
        reason = self.source.readiness()
        if reason is None:
            self.answer(200, {"status": "ready"})
        else:
            self.answer(503, {"status": "unavailable", "reason": reason})
