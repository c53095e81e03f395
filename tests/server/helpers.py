"""WebSocket test clients and server fixtures helpers for the rtbridge server tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rtbridge.exceptions import PublishError
from rtbridge.messages import Message

DEFAULT_TIMEOUT = 5.0


class Client:
    """A real WebSocket client speaking protocol v2, with helpers for requests and frames."""

    def __init__(self, socket: ClientConnection, welcome: dict[str, Any]) -> None:
        self.socket = socket
        self.welcome = welcome
        self.socket_id: str = welcome["socket_id"]
        self._next_id = 0
        # Frames read while waiting for an answer, handed out by recv() later.
        self._backlog: deque[dict[str, Any]] = deque()

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> Client:
        """Connect to ``url`` and read the welcome frame."""
        kwargs.setdefault("max_size", 16 * 1024 * 1024)
        socket = await connect(url, **kwargs)
        welcome = json.loads(await asyncio.wait_for(socket.recv(), DEFAULT_TIMEOUT))
        assert welcome["op"] == "welcome", welcome
        return cls(socket, welcome)

    async def send(self, frame: Any) -> None:
        """Send ``frame`` as JSON text (or as is when it is a str or bytes)."""
        await self.socket.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    async def recv(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Return the next frame, decoded."""
        if self._backlog:
            return self._backlog.popleft()
        return json.loads(await asyncio.wait_for(self.socket.recv(), timeout))

    async def recv_op(self, op: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """Return the next frame whose op is ``op``, skipping heartbeats and others."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - loop.time()))
            if frame["op"] == op:
                return frame

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a request with a fresh id and return the answer (ack, pong or error)."""
        self._next_id += 1
        request_id = self._next_id
        await self.send({"op": op, "id": request_id, **fields})
        skipped: list[dict[str, Any]] = []
        while True:
            frame = json.loads(await asyncio.wait_for(self.socket.recv(), DEFAULT_TIMEOUT))
            if frame.get("id") == request_id and frame["op"] in ("ack", "pong", "error"):
                self._backlog.extend(skipped)
                return frame
            skipped.append(frame)

    async def subscribe(self, channel: str) -> dict[str, Any]:
        """Subscribe to ``channel`` and return the ack (assert it is one)."""
        answer = await self.request("subscribe", channel=channel)
        assert answer["op"] == "ack", answer
        return answer

    async def messages(self, count: int, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
        """Return the next ``count`` message frames (heartbeats and gaps skipped)."""
        return [await self.recv_op("message", timeout) for _ in range(count)]

    async def closed(self, timeout: float = DEFAULT_TIMEOUT) -> tuple[int | None, str]:
        """Read until the server closes; return ``(code, reason)``."""

        async def drain() -> None:
            async for _ in self.socket:
                pass

        # Frames still in flight are read and dropped; the close code is what matters.
        with contextlib.suppress(ConnectionClosed):
            await asyncio.wait_for(drain(), timeout)
        await asyncio.wait_for(self.socket.wait_closed(), timeout)
        return self.socket.close_code, self.socket.close_reason or ""

    async def close(self) -> None:
        """Close the socket."""
        await self.socket.close()


async def eventually(predicate: Callable[[], bool], timeout: float = DEFAULT_TIMEOUT) -> None:
    """Wait until ``predicate()`` is true (state owned by the server thread), or fail."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition still false after {timeout}s")


def token(
    socket_id: str, channel: str, user_id: str | None = "1", member: dict[str, Any] | None = None
) -> str:
    """Return a subscription token as Django's auth endpoint would sign it."""
    from rtbridge.tokens import Grant, sign_subscription

    if member is None and channel.startswith("presence-") and user_id is not None:
        member = {"id": user_id, "info": {"id": int(user_id), "name": f"user{user_id}"}}
    return sign_subscription(socket_id, Grant(channel, user_id, member))


async def join(client: Client, channel: str, user_id: str = "1") -> dict[str, Any]:
    """Subscribe ``client`` as ``user_id`` with a valid token; return the ack."""
    answer = await client.request(
        "subscribe", channel=channel, auth=token(client.socket_id, channel, user_id)
    )
    assert answer["op"] == "ack", answer
    return answer


def member_ids(ack: dict[str, Any]) -> list[str]:
    """Return the member ids of a presence ack, in order."""
    return [member["id"] for member in ack["members"]]


@dataclass
class Publisher:
    """Publish ``n`` = 0, 1, 2... on ``channels`` every ``interval`` from a thread; note outcomes.

    ``published`` holds ``(n, started, ended)`` (monotonic times) of each publish that
    returned, ``failed`` ``(n, error)`` of each that raised ``PublishError``: the fault tests
    (Sentinel, Cluster) check which messages a failover may cost and how long it held them.
    """

    backend: Any
    channels: str | list[str] = "stream"
    interval: float = 0.02
    published: list[tuple[int, float, float]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        number = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.backend.publish(Message(self.channels, "n", number))
            except PublishError as exc:
                self.failed.append((number, str(exc)))
            else:
                self.published.append((number, started, time.monotonic()))
            number += 1
            time.sleep(self.interval)

    def join(self, timeout: float) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(timeout)

    def count(self) -> int:
        """Return how many publishes were made (returned or raised)."""
        return len(self.published) + len(self.failed)

    def after(self, moment: float) -> int:
        """Return how many publishes that returned were started after ``moment``."""
        return sum(1 for _, started, _ in self.published if started > moment)
