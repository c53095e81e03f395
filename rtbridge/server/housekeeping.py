"""Housekeeping of a node: heartbeats, idle timeouts, old revocations, the summary line."""

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

__all__ = ["Sweeper", "log_summaries"]

logger = logging.getLogger("rtbridge.server")


class Sweeper:
    """Close idle connections (4408), send heartbeats when due, forget old revocations."""

    def __init__(
        self, config: ServerConfig, hub: Hub, revocations: Revocations, stats: NodeStats
    ) -> None:
        self.config = config
        self.hub = hub
        self.revocations = revocations
        self.stats = stats
        self._last_heartbeat = time.monotonic()

    def sweep(self, now: float | None = None) -> None:
        """Do what is due at ``now`` (monotonic time)."""
        now = time.monotonic() if now is None else now
        idle_before = now - self.config.idle_timeout
        heartbeat_due = now - self._last_heartbeat >= self.config.heartbeat
        if heartbeat_due:
            self._last_heartbeat = now
            self.revocations.expire(now)
        for connection in self.hub.all_connections():
            if connection.last_activity < idle_before:
                self.stats.idle_closed += 1
                connection.close(
                    CloseCode.IDLE_TIMEOUT,
                    f"idle: nothing received for {self.config.idle_timeout:g}s",
                )
            elif heartbeat_due:
                connection.send(HEARTBEAT_FRAME)

    async def run(self) -> None:
        """Sweep often enough for the heartbeat and the idle timeout, until cancelled."""
        config = self.config
        interval = max(0.05, min(1.0, config.heartbeat / 2, config.idle_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                self.sweep()
            except Exception:
                logger.exception("rtbridge: heartbeat sweep failed")


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
