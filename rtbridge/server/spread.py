"""Large fan-outs in slices: a frame for thousands of sockets goes out a slice per callback."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from typing import Protocol

__all__ = ["SPREAD_INLINE", "SPREAD_SLICE_SECONDS", "Receiver", "Spreader"]

#: Receivers a fan-out hands its frame to at once; the rest get it in later callbacks. At
#: ~0.5 µs per receiver that keeps the delivering callback near half a millisecond.
SPREAD_INLINE = 1000
#: The longest one later callback hands frames over before letting the loop run others.
SPREAD_SLICE_SECONDS = 0.002
#: Receivers served between two looks at the clock.
_CLOCK_EVERY = 128


class Receiver(Protocol):
    """What a fan-out needs from a connection (``Connection`` provides it)."""

    def send(self, frame: bytes) -> bool:
        """Queue ``frame``; return ``False`` if the connection is (now) closed."""

    def hold(self, size: int) -> bool:
        """Keep a place for a frame of ``size`` bytes that comes later: the frames sent
        meanwhile wait behind it. Return ``False`` if the connection is (now) closed."""

    def release(self, frame: bytes) -> None:
        """Put ``frame`` in the oldest place held, and send what no longer waits."""


class _Spread:
    __slots__ = ("frame", "position", "receivers")

    def __init__(self, receivers: Sequence[Receiver], frame: bytes) -> None:
        self.receivers = receivers
        self.frame = frame
        self.position = 0


class Spreader:
    """Hand one frame to many receivers without holding the loop.

    Up to ``SPREAD_INLINE`` receivers get the frame at once; every other one holds a place
    for it at once (so whatever is sent to it later, on any channel, waits behind it) and gets
    it in later callbacks of at most ``SPREAD_SLICE_SECONDS`` each, oldest fan-out first. So
    each connection still receives its frames exactly in the order they were sent to it:
    per-channel order, acks after the messages before them, ``skip`` frames in their place.
    Holding a place counts toward the connection's outbound buffer like a queued frame, so
    the slow-consumer limit bounds it as before.
    """

    def __init__(self) -> None:
        self._work: deque[_Spread] = deque()
        self._scheduled = False

    @property
    def pending(self) -> int:
        """Return how many fan-outs have receivers still waiting for their frame."""
        return len(self._work)

    def spread(self, receivers: Sequence[Receiver], frame: bytes) -> int:
        """Send ``frame`` to each of ``receivers`` (a snapshot); return how many take it."""
        sent = 0
        # The common case (the hot path of one message to a channel): a plain loop.
        for receiver in receivers if len(receivers) <= SPREAD_INLINE else receivers[:SPREAD_INLINE]:
            if receiver.send(frame):
                sent += 1
        if len(receivers) <= SPREAD_INLINE:
            return sent
        size = len(frame)
        later = [receiver for receiver in receivers[SPREAD_INLINE:] if receiver.hold(size)]
        if later:
            self._work.append(_Spread(later, frame))
            if not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self._run)
        return sent + len(later)

    def _run(self) -> None:
        self._scheduled = False
        clock = time.perf_counter
        deadline = clock() + SPREAD_SLICE_SECONDS
        work = self._work
        while work:
            item = work[0]
            receivers, frame, start = item.receivers, item.frame, item.position
            end = len(receivers)
            while start < end:
                stop = min(end, start + _CLOCK_EVERY)
                for index in range(start, stop):
                    receivers[index].release(frame)
                start = stop
                if clock() >= deadline:
                    break
            item.position = start
            if start >= end:
                work.popleft()
            if clock() >= deadline:
                break
        if work and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)
