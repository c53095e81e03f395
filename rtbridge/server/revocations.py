"""Revocations: when each (user, channel) lost access, as this node saw it and as shared."""

from __future__ import annotations

import time
from typing import Protocol

from ..conf import DEFAULT_TOKEN_TTL

__all__ = ["Revocations"]


class RevocationStore(Protocol):
    """Where revocations are shared between nodes (the broker)."""

    async def revoked_at(self, user_id: str, channel: str) -> float | None:
        """Return when the store last saw ``user_id``'s access to ``channel`` revoked."""


class Revocations:
    """The revocations this node has seen, kept for the token lifetime, and the shared store.

    A token signed up to the second of a revocation is refused; older tokens expire on their
    own after ``keep_for`` seconds (the server passes ``RTBRIDGE_TOKEN_TTL``), so entries
    older than that are forgotten.
    """

    def __init__(self, store: RevocationStore, keep_for: float = DEFAULT_TOKEN_TTL) -> None:
        self._store = store
        self._keep_for = keep_for
        # (user id, channel) -> (revocation time, monotonic time it can be forgotten).
        self._seen: dict[tuple[str, str], tuple[float, float]] = {}

    def record(self, user_id: str, channel: str, revoked_at: float) -> None:
        """Remember that ``user_id`` lost access to ``channel`` at ``revoked_at`` (Unix time)."""
        self._seen[(user_id, channel)] = (revoked_at, time.monotonic() + self._keep_for)

    def seen(self, user_id: str, channel: str) -> float | None:
        """Return when this node last saw ``user_id``'s access to ``channel`` revoked."""
        entry = self._seen.get((user_id, channel))
        return entry[0] if entry is not None else None

    async def latest(self, user_id: str, channel: str) -> float | None:
        """Return the latest revocation of ``user_id`` on ``channel``, this node's or shared."""
        seen = self.seen(user_id, channel)
        stored = await self._store.revoked_at(user_id, channel)
        if stored is None or seen is None:
            return stored if seen is None else seen
        return max(stored, seen)

    def expire(self, now: float) -> None:
        """Forget the revocations older than the token lifetime (``now`` is monotonic time)."""
        if self._seen:
            self._seen = {key: value for key, value in self._seen.items() if value[1] > now}
