"""The hub: which connections are open and subscribed where, and the fan-out to them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable, Iterator
from typing import Any, Protocol

from ..channel_names import PRESENCE_PREFIX
from ..messages import Message
from .brokers import Broker
from .events import PresenceEntry
from .protocol import (
    gap_frame,
    json_string,
    message_frame,
    presence_frame,
    skip_frame,
    whisper_frame,
)
from .revocations import Revocations
from .stats import NodeStats

__all__ = ["Hub", "Subscriber"]

logger = logging.getLogger("rtbridge.server")

# How long a subscribe waits for the broker (Redis) to confirm before it is acked anyway.
SUBSCRIBE_CONFIRM_TIMEOUT = 5.0
_EVENT_CACHE_SIZE = 1024


class LatencyRecorder(Protocol):
    """Where the hub reports each message it fanned out (the metrics' latency histogram)."""

    def delivered(self, started: float) -> None:
        """Note a message that reached the node at ``started`` (``time.perf_counter()``)."""


class Subscriber(Protocol):
    """What the hub needs from a connection (``Connection`` provides it)."""

    socket_id: str
    #: Monotonic time of the last frame received (idle sockets are closed).
    last_activity: float

    def send(self, frame: bytes) -> bool:
        """Queue ``frame``; return ``False`` if the connection is (now) closed."""

    def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code``."""

    def revoke(self, channel: str, user_id: str) -> bool:
        """End the subscription to ``channel`` if ``user_id`` holds it; return whether it did."""

    def presence_member(self, channel: str) -> dict[str, Any] | None:
        """Return the member the connection is on presence ``channel`` as, if it is."""

    def presence_event(
        self, channel: str, action: str, member: dict[str, Any], version: int, frame: bytes
    ) -> None:
        """Send the presence change ``frame`` unless the connection's list already has it."""


class Hub:
    """Route what reaches the node to the local connections subscribed to each channel.

    Each message frame is encoded once per channel and the same bytes are written to every
    subscriber. The broker is told to listen to a channel when its first local subscriber
    arrives and to stop when the last one leaves. The hub implements ``BrokerEvents`` (and
    so ``PresenceEvents``); what happens to one subscriber is the subscriber's business. All
    methods run on the server's loop.
    """

    def __init__(
        self,
        broker: Broker,
        stats: NodeStats,
        revocations: Revocations,
        max_connections: int,
    ) -> None:
        self.broker = broker
        self.stats = stats
        self.revocations = revocations
        self.max_connections = max_connections
        self.connections: dict[str, Subscriber] = {}
        #: Sockets whose closing handshake has not finished (a superset of ``connections``).
        self.open_sockets = 0
        self._all_closed: asyncio.Event | None = None
        self._channels: dict[str, set[Subscriber]] = {}
        self._channel_json: dict[str, bytes] = {}
        self._seq: dict[str, int] = {}
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._event_json: dict[str, bytes] = {}
        #: Told about every message fanned out (set by the server when metrics are on).
        self.latency: LatencyRecorder | None = None
        # When the message being delivered was published (Server.publish stamps it).
        self._published_at: float | None = None

    # Connections --------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """Return whether the node holds ``max_connections`` sockets already."""
        return len(self.connections) >= self.max_connections

    def add(self, connection: Subscriber) -> None:
        """Register an open connection."""
        self.connections[connection.socket_id] = connection
        self.stats.opened += 1
        self.open_sockets += 1

    def remove(self, connection: Subscriber) -> bool:
        """Forget ``connection``; return whether it was registered (its channels are its own)."""
        if self.connections.pop(connection.socket_id, None) is None:
            return False
        self.stats.closed += 1
        return True

    def socket_closed(self) -> None:
        """Record that one socket finished its closing handshake."""
        self.open_sockets -= 1
        if self.open_sockets <= 0 and self._all_closed is not None:
            self._all_closed.set()

    async def wait_closed(self) -> None:
        """Return once every socket finished its closing handshake (used while shutting down)."""
        if self.open_sockets > 0:
            self._all_closed = asyncio.Event()
            await self._all_closed.wait()

    def all_connections(self) -> tuple[Subscriber, ...]:
        """Return the open connections (a copy: closing them does not disturb the caller)."""
        return tuple(self.connections.values())

    def close_all(self, code: int, reason: str) -> None:
        """Close every connection with ``code``."""
        for connection in self.all_connections():
            connection.close(code, reason)

    def channel_count(self) -> int:
        """Return the number of channels with local subscribers."""
        return len(self._channels)

    def subscribers(self, channel: str) -> int:
        """Return the number of local connections subscribed to ``channel``."""
        return len(self._channels.get(channel, ()))

    def subscription_count(self) -> int:
        """Return the number of (connection, channel) subscriptions on this node."""
        return sum(map(len, self._channels.values()))

    # Subscriptions ------------------------------------------------------------------------

    async def subscribe(self, connection: Subscriber, channel: str) -> int:
        """Route ``channel`` to ``connection``; return the channel's current ``seq``.

        Returns once the broker listens to the channel, so a message published after the
        client got its ack reaches it.
        """
        subscribers = self._channels.get(channel)
        if subscribers is None:
            subscribers = self._channels[channel] = set()
            self._channel_json[channel] = json_string(channel)
            self._seq[channel] = 0
            ready = self.broker.subscribe(channel)
            if ready is not None:
                self._ready[channel] = asyncio.ensure_future(_settle(ready))
        subscribers.add(connection)
        waiting = self._ready.get(channel)
        if waiting is not None and not waiting.done():
            try:
                await asyncio.wait_for(asyncio.shield(waiting), SUBSCRIBE_CONFIRM_TIMEOUT)
            except asyncio.TimeoutError:
                logger.warning(
                    "rtbridge: the broker did not confirm the subscription to %r in %ss; "
                    "acknowledging anyway",
                    channel,
                    SUBSCRIBE_CONFIRM_TIMEOUT,
                )
        if waiting is not None and waiting.done() and self._ready.get(channel) is waiting:
            del self._ready[channel]
        return self._seq.get(channel, 0)

    def unsubscribe(self, connection: Subscriber, channel: str) -> None:
        """Stop routing ``channel`` to ``connection`` (a no-op if it was not subscribed)."""
        subscribers = self._channels.get(channel)
        if subscribers is None:
            return
        subscribers.discard(connection)
        if not subscribers:
            del self._channels[channel]
            del self._channel_json[channel]
            del self._seq[channel]
            # A pending confirmation is left to finish on its own: other coroutines may
            # still await it, and _settle never raises.
            self._ready.pop(channel, None)
            self.broker.unsubscribe(channel)

    def channels(self) -> list[str]:
        """Return the channels with local subscribers (the broker resubscribes them)."""
        return list(self._channels)

    # Delivery (BrokerEvents) --------------------------------------------------------------

    def deliver(self, channel: str, event: str, payload: bytes, exclude: str | None) -> int:
        """Send one message to the local subscribers of ``channel``; return how many got it."""
        subscribers = self._channels.get(channel)
        if not subscribers:
            return 0
        seq = self._seq[channel] + 1
        self._seq[channel] = seq
        event_json = self._event_json.get(event)
        if event_json is None:
            if len(self._event_json) >= _EVENT_CACHE_SIZE:
                self._event_json.clear()
            event_json = self._event_json[event] = json_string(event)
        channel_json = self._channel_json[channel]
        frame = message_frame(channel_json, event_json, seq, payload)
        excluded = self.connections.get(exclude) if exclude else None
        if excluded is not None and excluded in subscribers:
            # The sender skips its own change, but its seq must stay continuous.
            excluded.send(skip_frame(channel_json, seq))
        sent = 0
        # A send may close a slow consumer; iterate over a copy so removal cannot interfere.
        for connection in tuple(subscribers):
            if connection is not excluded and connection.send(frame):
                sent += 1
        self.stats.messages += 1
        self.stats.frames += sent
        if self.latency is not None and sent:
            started = self._published_at
            self.latency.delivered(time.perf_counter() if started is None else started)
        return sent

    def deliver_message(self, message: Message, published_at: float | None = None) -> int:
        """Send a published ``Message`` to the local subscribers of each of its channels.

        ``published_at`` (``time.perf_counter()`` when it was published) starts the latency.
        """
        payload = message.payload.encode("utf-8")
        self._published_at = published_at
        try:
            return sum(
                self.deliver(channel, message.event, payload, message.exclude)
                for channel in message.channels
            )
        finally:
            self._published_at = None

    def gap(self, channels: Iterable[str]) -> None:
        """Tell the subscribers of ``channels`` they may have missed messages."""
        for channel in channels:
            subscribers = self._channels.get(channel)
            if not subscribers:
                continue
            frame = gap_frame(channel)
            self.stats.gaps += 1
            for connection in tuple(subscribers):
                connection.send(frame)

    def deliver_whisper(
        self, channel: str, event: str, data_json: bytes, user_id: str | None, sender: str
    ) -> int:
        """Relay a whisper to the local subscribers of ``channel`` except the sender."""
        subscribers = self._channels.get(channel)
        if not subscribers:
            return 0
        frame = whisper_frame(channel, event, data_json, user_id)
        sent = 0
        for connection in tuple(subscribers):
            if connection.socket_id != sender and connection.send(frame):
                sent += 1
        self.stats.whispers += 1
        return sent

    def revoke(self, user_id: str, channel: str, revoked_at: float) -> int:
        """End ``user_id``'s subscriptions to ``channel`` on this node; return how many."""
        self.revocations.record(user_id, channel, revoked_at)
        ended = sum(
            connection.revoke(channel, user_id)
            for connection in tuple(self._channels.get(channel, ()))
        )
        self.stats.revoked += ended
        return ended

    # Presence (PresenceEvents) ------------------------------------------------------------

    def presence_event(
        self, channel: str, action: str, member: dict[str, Any], version: int
    ) -> None:
        """Send a ``join``/``leave`` to the local subscribers of ``channel`` (each decides)."""
        subscribers = self._channels.get(channel)
        if not subscribers:
            return
        frame = presence_frame(channel, action, member)
        for connection in tuple(subscribers):
            connection.presence_event(channel, action, member, version, frame)

    def presence_channels(self) -> list[str]:
        """Return the presence channels with local subscribers."""
        return [channel for channel in self._channels if channel.startswith(PRESENCE_PREFIX)]

    def presence_entries(self) -> Iterator[PresenceEntry]:
        """Yield ``(channel, socket id, member)`` of every local presence subscription.

        Lazily: each connection is asked when reached, so one that left while the caller was
        busy with the previous entry is skipped.
        """
        for channel in self.presence_channels():
            for connection in tuple(self._channels.get(channel, ())):
                member = connection.presence_member(channel)
                if member is not None:
                    yield channel, connection.socket_id, member


async def _settle(ready: Awaitable[None]) -> None:
    # A failed broker subscribe is retried by the broker itself after it reconnects.
    try:
        await ready
    except Exception as exc:
        logger.debug("rtbridge: broker subscribe failed (will resubscribe): %s", exc)
