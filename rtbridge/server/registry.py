"""The servers running in this process, for ``LocalBackend`` (imports no Tornado)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import Server

__all__ = ["register", "running_servers", "unregister"]

_lock = threading.Lock()
_servers: list[Server] = []


def register(server: Server) -> None:
    """Record that ``server`` runs in this process and accepts published messages."""
    with _lock:
        if server not in _servers:
            _servers.append(server)


def unregister(server: Server) -> None:
    """Forget ``server`` (it is stopping)."""
    with _lock:
        if server in _servers:
            _servers.remove(server)


def running_servers() -> list[Server]:
    """Return the servers running in this process, oldest first."""
    with _lock:
        return list(_servers)
