"""The node's activity counters and the one-line summary logged from them."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

__all__ = ["LOOP_LAG_BOUNDS", "NodeStats"]

#: Upper bounds in seconds of the loop-lag histogram's buckets (``NodeStats.loop_lag_buckets``
#: has one more, for the lags above the last bound). 5 ms is the budget of one loop callback.
LOOP_LAG_BOUNDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


def _empty_histogram() -> list[int]:
    return [0] * (len(LOOP_LAG_BOUNDS) + 1)


@dataclass
class NodeStats:
    """Counters since the node started, for the summary line and the metrics."""

    opened: int = 0
    closed: int = 0
    refused: int = 0
    messages: int = 0
    frames: int = 0
    errors: int = 0
    abusers: int = 0
    slow_consumers: int = 0
    idle_closed: int = 0
    gaps: int = 0
    whispers: int = 0
    calls: int = 0
    revoked: int = 0
    #: Subscribes with ``since``, those answered ``recovered: true``, and messages replayed
    #: (to resuming clients, and to every subscriber after the node caught up from history).
    resumes: int = 0
    recovered: int = 0
    replayed: int = 0
    #: Catch-ups from history (first subscriber, broker reconnect, hole or new epoch).
    resyncs: int = 0
    #: Live messages already delivered (dropped), and dropped because too many waited.
    duplicates: int = 0
    dropped: int = 0
    #: Bytes of frames handed to the sockets.
    bytes_out: int = 0
    #: Connections failed for breaking RFC 6455 (close 1002, 1007 or 1009).
    protocol_failures: int = 0
    #: Wake-ups of the loop-lag probe (``housekeeping.LoopLagProbe``), the sum and the
    #: largest of their lags in seconds, and how many fell in each ``LOOP_LAG_BOUNDS`` bucket.
    loop_lag_count: int = 0
    loop_lag_sum: float = 0.0
    loop_lag_max: float = 0.0
    loop_lag_buckets: list[int] = field(default_factory=_empty_histogram)

    def record_loop_lag(self, lag: float) -> None:
        """Count one probe wake-up that ran ``lag`` seconds late."""
        lag = max(0.0, lag)
        self.loop_lag_count += 1
        self.loop_lag_sum += lag
        if lag > self.loop_lag_max:
            self.loop_lag_max = lag
        self.loop_lag_buckets[bisect.bisect_left(LOOP_LAG_BOUNDS, lag)] += 1

    def summary(self, connections: int, channels: int) -> str:
        """Return a one-line summary with the current ``connections`` and ``channels``."""
        return (
            f"{connections} connection(s), {channels} channel(s); "
            f"since start: {self.opened} opened, {self.closed} closed, {self.refused} "
            f"refused, {self.messages} messages, {self.frames} frames sent, {self.gaps} gaps, "
            f"{self.errors} bad frames, {self.abusers} abusive, {self.slow_consumers} slow, "
            f"{self.idle_closed} idle, {self.whispers} whispers, {self.calls} calls, "
            f"{self.revoked} revoked, {self.resumes} resumes ({self.recovered} recovered, "
            f"{self.replayed} replayed), {self.resyncs} resyncs; "
            f"loop lag max {self.loop_lag_max * 1000:.1f} ms"
        )
