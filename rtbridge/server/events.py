"""What brokers and presence tell the hub: the two small interfaces the hub implements."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

__all__ = ["BrokerEvents", "PresenceEntry", "PresenceEvents"]

#: One connection's presence entry: (channel, socket id, member).
PresenceEntry = tuple[str, str, dict[str, Any]]


class PresenceEvents(Protocol):
    """Where presence sends member changes, and what it asks about this node's connections."""

    def presence_event(
        self, channel: str, action: str, member: dict[str, Any], version: int
    ) -> None:
        """Send ``join``/``leave`` of ``member`` (at ``version``) to the local subscribers."""

    def presence_channels(self) -> list[str]:
        """Return the presence channels with local subscribers."""

    def presence_entries(self) -> Iterator[PresenceEntry]:
        """Yield this node's presence entries, each read when reached (for re-adding them)."""


class BrokerEvents(PresenceEvents, Protocol):
    """Where a broker delivers what reaches this node, and what it asks to resubscribe."""

    def deliver(
        self,
        channel: str,
        offset: int | None,
        epoch: str | None,
        event: str,
        payload: bytes,
        exclude: str | None,
        published_at: float | None = None,
    ) -> int:
        """Send the message at ``offset``/``epoch`` of ``channel`` to the local subscribers.

        ``offset``/``epoch`` are ``None`` for a message published without a position;
        ``published_at`` is ``time.perf_counter()`` when it was published in this process (for
        the latency metric). Returns how many got it.
        """

    def deliver_whisper(
        self, channel: str, event: str, data_json: bytes, user_id: str | None, sender: str
    ) -> int:
        """Relay a whisper to the local subscribers of ``channel`` except ``sender``."""

    def broker_lost(self, channels: Iterable[str] | None = None) -> None:
        """Note that the feed of ``channels`` (all: ``None``) stopped: hold live messages back
        until :meth:`resync`."""

    def resync(self, channels: Iterable[str]) -> None:
        """Catch up on ``channels`` from history (the broker listens to them again).

        What was missed is replayed in order when history proves nothing is lost; otherwise
        the subscribers get a ``gap``.
        """

    def revoke(self, user_id: str, channel: str, revoked_at: float) -> int:
        """End ``user_id``'s local subscriptions to ``channel``; return how many ended."""

    def channels(self) -> list[str]:
        """Return every channel with local subscribers (resubscribed after a reconnect)."""
