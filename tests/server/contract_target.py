"""Contract targets for the self-hosted transport (redis, local), observed over real sockets."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from rtbridge.backends.base import BaseBackend
from rtbridge.backends.local import LocalBackend
from rtbridge.backends.redis import RedisBackend
from rtbridge.server import Server
from tests.contract import Delivery


class SocketListener:
    """A real WebSocket client subscribed to some channels, collecting message frames."""

    def __init__(self, url: str, channels: list[str]) -> None:
        self.frames: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._stack = ExitStack()
        self.socket: ClientConnection = self._stack.enter_context(connect(url, open_timeout=5))
        welcome = json.loads(self.socket.recv(timeout=5))
        assert welcome["op"] == "welcome", welcome
        self.socket_id: str = welcome["socket_id"]
        for number, channel in enumerate(channels, 1):
            self.socket.send(json.dumps({"op": "subscribe", "id": number, "channel": channel}))
            answer = json.loads(self.socket.recv(timeout=5))
            assert (answer["op"], answer["id"], answer["channel"]) == ("ack", number, channel)
            assert isinstance(answer["offset"], int) and isinstance(answer["epoch"], str)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for raw in self.socket:
                frame = json.loads(raw)
                with self._changed:
                    self.frames.append(frame)
                    self._changed.notify_all()
        except Exception:  # closed by close() or by the server; the test sees what arrived
            return

    def received(self, count: int, timeout: float = 5.0) -> list[Delivery]:
        """Wait until ``count`` messages arrived (or ``timeout``); return every one so far."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._messages()) < count and time.monotonic() < deadline:
                self._changed.wait(max(0.0, deadline - time.monotonic()))
            return [Delivery(f["channel"], f["event"], f["data"]) for f in self._messages()]

    def _messages(self) -> list[dict[str, Any]]:
        return [frame for frame in self.frames if frame["op"] == "message"]

    def close(self) -> None:
        """Close the socket."""
        self._stack.close()
        self._reader.join(5)


@dataclass
class SocketTarget:
    backend: BaseBackend
    server: Server

    def listen(self, channels: list[str]) -> SocketListener:
        return SocketListener(self.server.url, channels)


def redis_target(request: pytest.FixtureRequest) -> Iterator[SocketTarget]:
    """``RedisBackend`` → real Redis → a server node → a WebSocket client."""
    redis_server = request.getfixturevalue("redis_server")
    prefix = f"contract-{secrets.token_hex(4)}:"
    server = Server(redis_url=redis_server.url, prefix=prefix).start()
    try:
        yield SocketTarget(RedisBackend(url=redis_server.url, prefix=prefix), server)
    finally:
        server.stop()


def local_target(request: pytest.FixtureRequest) -> Iterator[SocketTarget]:
    """``LocalBackend`` → the in-process server → a WebSocket client."""
    server = Server().start()
    try:
        yield SocketTarget(LocalBackend(), server)
    finally:
        server.stop()
