"""Node housekeeping: heartbeats, idle timeouts, old revocations, loop lag, the summary line."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .config import ServerConfig
from .hub import Hub
from .protocol import HEARTBEAT_FRAME, CloseCode
from .revocations import Revocations
from .stats import NodeStats

__all__ = ["LoopLagProbe", "Sweeper", "log_summaries"]

logger = logging.getLogger("rtbridge.server")

#: Slots of the heartbeat wheel: one turn takes one heartbeat interval, and each tick visits
#: one slot, so a tick touches 1/WHEEL_SLOTS of the connections (500 of 50,000).
WHEEL_SLOTS = 100
#: The shortest tick (short heartbeats, as in tests, get fewer slots instead).
MIN_TICK = 0.01
#: How often the loop-lag probe wakes up: one timer callback, a few µs, 50 times a second.
LOOP_LAG_INTERVAL = 0.02


class Sweeper:
    """Send heartbeats and close idle connections, one slice of the connections per tick.

    Connections are dealt round-robin onto the slots of a wheel that turns once per heartbeat
    interval. Each tick visits one slot: a connection that sent nothing for ``idle_timeout`` is
    closed with 4408, every other one gets its heartbeat. So every socket gets one heartbeat
    per interval (the first within an interval of opening), a silent one is closed between
    ``idle_timeout`` and ``idle_timeout + heartbeat`` after its last frame, and no callback
    walks all the sockets: sending 10,000 heartbeats at once held the loop for tens of
    milliseconds, and the answers arriving together held it again.
    """

    def __init__(
        self, config: ServerConfig, hub: Hub, revocations: Revocations, stats: NodeStats
    ) -> None:
        self.config = config
        self.hub = hub
        self.revocations = revocations
        self.stats = stats
        self.slots = max(1, min(WHEEL_SLOTS, int(config.heartbeat / MIN_TICK)))
        #: Seconds between two ticks.
        self.tick = config.heartbeat / self.slots
        # Socket ids, not connections: a closed connection is not kept alive by the wheel
        # (its id is dropped when its slot comes round).
        self._wheel: list[list[str]] = [[] for _ in range(self.slots)]
        self._cursor = 0  # the slot the next tick visits
        self._deal = 0  # the slot the next connection joins

    def track(self, socket_id: str) -> None:
        """Give a new connection its slot (round-robin, so slots stay even however they arrive)."""
        self._wheel[self._deal].append(socket_id)
        self._deal = (self._deal + 1) % self.slots

    def visit(self, now: float | None = None) -> None:
        """Visit the next slot at ``now`` (monotonic time): idle ones closed, heartbeats sent."""
        now = time.monotonic() if now is None else now
        index = self._cursor
        self._cursor = (index + 1) % self.slots
        if index == 0:
            self.revocations.expire(now)
        idle_before = now - self.config.idle_timeout
        connections = self.hub.connections
        kept: list[str] = []
        for socket_id in self._wheel[index]:
            connection = connections.get(socket_id)
            if connection is None:
                continue  # closed since its last visit
            if connection.last_activity < idle_before:
                self.stats.idle_closed += 1
                connection.close(
                    CloseCode.IDLE_TIMEOUT,
                    f"idle: nothing received for {self.config.idle_timeout:g}s",
                )
            elif connection.send(HEARTBEAT_FRAME):
                kept.append(socket_id)
        self._wheel[index] = kept

    def slot_sizes(self) -> list[int]:
        """Return how many socket ids each slot holds (closed ones until their slot's visit)."""
        return [len(slot) for slot in self._wheel]

    async def run(self) -> None:
        """Tick every ``self.tick`` seconds (on a fixed schedule), until cancelled."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += self.tick
            delay = due - loop.time()
            if delay < -self.config.heartbeat:
                # The loop was held for a whole turn of the wheel: start the schedule afresh
                # rather than run every missed tick at once.
                due = loop.time()
            await asyncio.sleep(max(0.0, delay))
            try:
                self.visit()
            except Exception:
                logger.exception("rtbridge: heartbeat tick failed")


class LoopLagProbe:
    """Measure the event loop's lag: how late a callback due every ``interval`` runs.

    Whatever holds the loop (one long callback, or a turn with much work) delays the probe by
    as long, so the largest lag is the longest stall. Each lag goes to ``NodeStats``
    (histogram, sum, maximum), where the summary line and metrics read it.
    """

    def __init__(self, stats: NodeStats, interval: float = LOOP_LAG_INTERVAL) -> None:
        self.stats = stats
        self.interval = interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        """Start probing the running loop."""
        loop = self._loop = asyncio.get_running_loop()
        self._due = loop.time() + self.interval
        self._handle = loop.call_at(self._due, self._wake)

    def stop(self) -> None:
        """Stop probing."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _wake(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        self.stats.record_loop_lag(now - self._due)
        # Due one interval after this run: a stall longer than an interval counts once.
        self._due = now + self.interval
        self._handle = loop.call_at(self._due, self._wake)


async def log_summaries(
    interval: float, activity: Callable[[], tuple[int, ...]], summary: Callable[[], str]
) -> None:
    """Log ``summary()`` every ``interval`` seconds while ``activity()`` changes."""
    last: tuple[int, ...] = ()
    while True:
        await asyncio.sleep(interval)
        snapshot = activity()
        if snapshot != last:
            last = snapshot
            logger.info("rtbridge: %s", summary())
