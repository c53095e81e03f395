"""The flush queue: one write per connection per turn, in slices when there are many."""

from __future__ import annotations

import asyncio
import time

from rtbridge.server.flush import FLUSH_SLICE_SECONDS, FlushQueue


class SlowWriter:
    """A connection whose write takes 0.2 ms (a few dozen socket writes' worth)."""

    def __init__(self, log: list[tuple[int, int]], turn: list[int], name: int) -> None:
        self.log, self.turn, self.name = log, turn, name

    def flush(self) -> None:
        time.sleep(0.0002)
        self.log.append((self.turn[0], self.name))


async def test_many_connections_are_flushed_in_slices_in_the_order_they_queued() -> None:
    queue = FlushQueue()
    log: list[tuple[int, int]] = []
    turn = [0]
    writers = [SlowWriter(log, turn, name) for name in range(100)]  # ~20 ms of writes
    for writer in writers:
        queue.schedule(writer)
    for _ in range(1000):
        if len(log) == len(writers):
            break
        await asyncio.sleep(0)
        turn[0] += 1
    assert [name for _, name in log] == list(range(100))  # each once, in order
    slices = {t for t, _ in log}
    assert len(slices) > 3  # several callbacks, each about FLUSH_SLICE_SECONDS long
    per_slice = max(sum(1 for t, _ in log if t == s) for s in slices)
    assert per_slice <= FLUSH_SLICE_SECONDS / 0.0002 + 32
