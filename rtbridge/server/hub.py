"""The hub: channel → local connections, per-channel sequence numbers and the fan-out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..messages import Message
from .config import ServerConfig
from .protocol import HEARTBEAT_FRAME, CloseCode, gap_frame, json_string, message_frame

if TYPE_CHECKING:
    from .brokers import Broker
    from .connection import Connection

__all__ = ["Hub", "HubStats"]

logger = logging.getLogger("rtbridge.server")

# How long a subscribe waits for the broker (Redis) to confirm before it is acked anyway.
SUBSCRIBE_CONFIRM_TIMEOUT = 5.0
_EVENT_CACHE_SIZE = 1024


@dataclass
class HubStats:
    """Counters for the INFO summary."""

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


class Hub:
    """Route messages to the local connections subscribed to their channels.

    Each message frame is encoded once per channel and the same bytes are written to every
    subscriber. The broker is told to listen to a channel when its first local subscriber
    arrives and to stop when the last one leaves. All methods run on the server's loop.
    """

    def __init__(self, config: ServerConfig, broker: Broker) -> None:
        self.config = config
        self.broker = broker
        self.stats = HubStats()
        self.connections: dict[str, Connection] = {}
        self._channels: dict[str, set[Connection]] = {}
        self._channel_json: dict[str, bytes] = {}
        self._seq: dict[str, int] = {}
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._event_json: dict[str, bytes] = {}
        self._last_heartbeat = time.monotonic()
        self._dirty: list[Connection] = []
        #: Sockets whose closing handshake has not finished (a superset of ``connections``).
        self.open_sockets = 0
        self._all_closed: asyncio.Event | None = None

    # Connections --------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """Return whether the node holds ``max_connections`` sockets already."""
        return len(self.connections) >= self.config.max_connections

    def add(self, connection: Connection) -> None:
        """Register an open connection."""
        self.connections[connection.socket_id] = connection
        self.stats.opened += 1
        self.open_sockets += 1

    def socket_closed(self, connection: Connection) -> None:
        """Record that the socket under ``connection`` is fully closed."""
        self.remove(connection)
        self.open_sockets -= 1
        if self.open_sockets <= 0 and self._all_closed is not None:
            self._all_closed.set()

    def remove(self, connection: Connection) -> None:
        """Forget a closed connection and drop its subscriptions."""
        if self.connections.pop(connection.socket_id, None) is None:
            return
        self.stats.closed += 1
        connection.closed = True
        for channel in list(connection.channels):
            self.unsubscribe(connection, channel)

    async def wait_closed(self) -> None:
        """Return once every socket finished its closing handshake (used while shutting down)."""
        if self.open_sockets > 0:
            self._all_closed = asyncio.Event()
            await self._all_closed.wait()

    def channel_count(self) -> int:
        """Return the number of channels with local subscribers."""
        return len(self._channels)

    def subscribers(self, channel: str) -> int:
        """Return the number of local connections subscribed to ``channel``."""
        return len(self._channels.get(channel, ()))

    # Subscriptions ------------------------------------------------------------------------

    async def subscribe(self, connection: Connection, channel: str) -> int:
        """Subscribe ``connection`` to ``channel``; return the channel's current ``seq``.

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
        connection.channels.add(channel)
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
        if connection.closed:
            # It closed while waiting for the broker; do not leave it behind as a subscriber.
            self.unsubscribe(connection, channel)
        return self._seq.get(channel, 0)

    def unsubscribe(self, connection: Connection, channel: str) -> None:
        """Unsubscribe ``connection`` from ``channel`` (a no-op if it was not subscribed)."""
        connection.channels.discard(channel)
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

    # Delivery -----------------------------------------------------------------------------

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
        frame = message_frame(self._channel_json[channel], event_json, seq, payload)
        excluded = self.connections.get(exclude) if exclude else None
        sent = 0
        # A send may close a slow consumer; iterate over a copy so removal cannot interfere.
        for connection in tuple(subscribers):
            if connection is not excluded and connection.send(frame):
                sent += 1
        self.stats.messages += 1
        self.stats.frames += sent
        return sent

    def deliver_message(self, message: Message) -> int:
        """Send a published ``Message`` to the local subscribers of each of its channels."""
        payload = message.payload.encode("utf-8")
        return sum(
            self.deliver(channel, message.event, payload, message.exclude)
            for channel in message.channels
        )

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

    def schedule_flush(self, connection: Connection) -> None:
        """Write ``connection``'s queued frames at the end of this turn of the event loop."""
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._flush)
        self._dirty.append(connection)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            connection.flush()

    # Housekeeping -------------------------------------------------------------------------

    def sweep(self, now: float | None = None) -> None:
        """Close idle connections (4408) and send heartbeats when they are due."""
        now = time.monotonic() if now is None else now
        idle_before = now - self.config.idle_timeout
        heartbeat_due = now - self._last_heartbeat >= self.config.heartbeat
        if heartbeat_due:
            self._last_heartbeat = now
        for connection in tuple(self.connections.values()):
            if connection.last_activity < idle_before:
                self.stats.idle_closed += 1
                connection.close(
                    CloseCode.IDLE_TIMEOUT,
                    f"idle: nothing received for {self.config.idle_timeout:g}s",
                )
            elif heartbeat_due:
                connection.send(HEARTBEAT_FRAME)

    def close_all(self, code: int, reason: str) -> None:
        """Close every connection with ``code``."""
        for connection in tuple(self.connections.values()):
            connection.close(code, reason)


async def _settle(ready: Awaitable[None]) -> None:
    # A failed broker subscribe is retried by the broker itself after it reconnects.
    try:
        await ready
    except Exception as exc:
        logger.debug("rtbridge: broker subscribe failed (will resubscribe): %s", exc)
