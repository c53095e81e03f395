"""Write batching: the frames a connection queues in one turn of the event loop go out together."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["FLUSH_SLICE_SECONDS", "FlushQueue"]

#: The longest one flush callback writes before it lets the loop run other callbacks. One
#: socket write costs ~5-10 µs of system time on loopback, so 10,000 sockets take ~75 ms.
FLUSH_SLICE_SECONDS = 0.001
#: Connections flushed between two looks at the clock.
_CLOCK_EVERY = 16


class Flushable(Protocol):
    """A connection with queued frames."""

    def flush(self) -> None:
        """Write the queued frames in one go."""


class FlushQueue:
    """Flush every connection that queued frames, once, at the end of the loop's current turn.

    A burst of messages then costs one socket write per connection instead of one per frame.
    Many connections are written in slices of at most ``FLUSH_SLICE_SECONDS``, the rest in
    the next turns: a connection not reached yet keeps adding to the frames it queued (in
    order), so a busy node writes fewer, larger batches instead of holding the loop.
    """

    def __init__(self) -> None:
        self._dirty: list[Flushable] = []
        self._scheduled = False

    def schedule(self, connection: Flushable) -> None:
        """Flush ``connection`` at the end of this turn (call once per batch and connection)."""
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        self._dirty.append(connection)

    def _flush(self) -> None:
        self._scheduled = False
        dirty = self._dirty
        clock = time.perf_counter
        deadline = clock() + FLUSH_SLICE_SECONDS
        done = 0
        # Connections scheduled while this runs (a flush that closes a socket sends nothing,
        # but be safe) are appended to the same list and picked up below or next time.
        while done < len(dirty):
            stop = min(len(dirty), done + _CLOCK_EVERY)
            for index in range(done, stop):
                dirty[index].flush()
            done = stop
            if clock() >= deadline:
                break
        if done < len(dirty):
            del dirty[:done]
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        else:
            dirty.clear()
