"""The servers running in this process: the one entry point ``LocalBackend`` uses (no Tornado)."""

from __future__ import annotations

import threading
from typing import Protocol

from ..messages import Message

__all__ = ["InProcessServer", "register", "running_servers", "unregister"]


class InProcessServer(Protocol):
    """What ``LocalBackend`` may do with a server of this process (``Server`` provides it)."""

    @property
    def running(self) -> bool:
        """Return whether the server accepts messages now."""

    def publish(self, message: Message) -> None:
        """Deliver ``message`` to the server's subscribers; safe from any thread."""

    def revoke(self, user_id: str, channel: str, revoked_at: float | None = None) -> None:
        """End ``user_id``'s subscriptions to ``channel``; safe from any thread."""


_lock = threading.Lock()
_servers: list[InProcessServer] = []


def register(server: InProcessServer) -> None:
    """Record that ``server`` runs in this process and accepts published messages."""
    with _lock:
        if server not in _servers:
            _servers.append(server)


def unregister(server: InProcessServer) -> None:
    """Forget ``server`` (it is stopping)."""
    with _lock:
        if server in _servers:
            _servers.remove(server)


def running_servers() -> list[InProcessServer]:
    """Return the servers running in this process, oldest first."""
    with _lock:
        return [server for server in _servers if server.running]
