"""Write batching: the frames a connection queues in one turn of the event loop go out together."""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["FlushQueue"]


class Flushable(Protocol):
    """A connection with queued frames."""

    def flush(self) -> None:
        """Write the queued frames in one go."""


class FlushQueue:
    """Flush every connection that queued frames, once, at the end of the loop's current turn.

    A burst of messages then costs one socket write per connection instead of one per frame.
    """

    def __init__(self) -> None:
        self._dirty: list[Flushable] = []

    def schedule(self, connection: Flushable) -> None:
        """Flush ``connection`` at the end of this turn (call once per turn and connection)."""
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush)
        self._dirty.append(connection)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            connection.flush()
