"""The node's activity counters and the one-line summary logged from them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NodeStats"]


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

    def summary(self, connections: int, channels: int) -> str:
        """Return a one-line summary with the current ``connections`` and ``channels``."""
        return (
            f"{connections} connection(s), {channels} channel(s); "
            f"since start: {self.opened} opened, {self.closed} closed, {self.refused} "
            f"refused, {self.messages} messages, {self.frames} frames sent, {self.gaps} gaps, "
            f"{self.errors} bad frames, {self.abusers} abusive, {self.slow_consumers} slow, "
            f"{self.idle_closed} idle, {self.whispers} whispers, {self.calls} calls, "
            f"{self.revoked} revoked, {self.resumes} resumes ({self.recovered} recovered, "
            f"{self.replayed} replayed), {self.resyncs} resyncs"
        )
