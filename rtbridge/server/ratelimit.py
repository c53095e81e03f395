"""A token bucket: at most ``rate`` actions per second on average, bursts up to ``rate``."""

from __future__ import annotations

import time

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allow ``rate`` actions per second, with a burst of up to ``rate`` at once."""

    __slots__ = ("rate", "tokens", "updated")

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self.tokens = float(rate)
        self.updated = time.monotonic()

    def take(self, now: float | None = None) -> bool:
        """Spend one token; return ``False`` (and spend nothing) when none is left."""
        now = time.monotonic() if now is None else now
        self.tokens = min(self.rate, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
