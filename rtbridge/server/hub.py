"""The hub: channel → local connections, per-channel sequence numbers and the fan-out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..auth import DEFAULT_TOKEN_TTL
from ..channel_names import PRESENCE_PREFIX
from ..messages import Message
from .config import ServerConfig
from .protocol import (
    HEARTBEAT_FRAME,
    CloseCode,
    gap_frame,
    json_string,
    message_frame,
    presence_frame,
    revoked_frame,
    skip_frame,
    whisper_frame,
)

if TYPE_CHECKING:
    from .brokers import Broker
    from .calls import CallRunner
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
    whispers: int = 0
    calls: int = 0
    revoked: int = 0


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
        #: Optional ops this node serves (see ``app.available_features``).
        self.features: tuple[str, ...] = ()
        #: Runs router calls in threads; set by the server while it runs.
        self.calls: CallRunner | None = None
        # (user id, channel) -> (revocation time, monotonic time it can be forgotten): the
        # revocations this node has seen, checked again after a subscribe completes.
        self._revocations: dict[tuple[str, str], tuple[float, float]] = {}
        # Presence joins/leaves in flight; kept so shutdown can wait for them.
        self._tasks: set[asyncio.Task[Any]] = set()

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
        """Unsubscribe ``connection`` from ``channel`` (a no-op if it was not subscribed).

        On a presence channel the connection's entry is removed (in the background), which
        sends ``leave`` to the others when it was the member's last connection.
        """
        connection.channels.discard(channel)
        grant = connection.grants.pop(channel, None)
        connection.presence_versions.pop(channel, None)
        connection.presence_backlog.pop(channel, None)
        if grant is not None and grant.member is not None:
            self.spawn(
                self.broker.presence.leave(channel, connection.socket_id, grant.member["id"])
            )
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

    # Presence, whispers and revocation --------------------------------------------------------

    def presence_channels(self) -> list[str]:
        """Return the presence channels with local subscribers."""
        return [channel for channel in self._channels if channel.startswith(PRESENCE_PREFIX)]

    def presence_event(
        self, channel: str, action: str, member: dict[str, Any], version: int
    ) -> None:
        """Send a ``join``/``leave`` to the local subscribers of ``channel``.

        Skipped: the member's own connections, and connections whose member list already
        reflects the event (its ``version`` is not newer than their snapshot). Connections
        still waiting for their snapshot keep the event until it arrives.
        """
        subscribers = self._channels.get(channel)
        if not subscribers:
            return
        frame: bytes | None = None
        for connection in tuple(subscribers):
            grant = connection.grants.get(channel)
            if grant is None or grant.member is None or grant.member["id"] == member["id"]:
                continue
            if channel not in connection.presence_versions:
                continue
            snapshot = connection.presence_versions[channel]
            if snapshot is None:
                connection.presence_backlog.setdefault(channel, []).append(
                    (version, action, member)
                )
            elif version > snapshot:
                if frame is None:
                    frame = presence_frame(channel, action, member)
                connection.send(frame)

    def presence_ready(self, connection: Connection, channel: str, version: int) -> None:
        """Record ``connection``'s snapshot version and send the events held back for it."""
        connection.presence_versions[channel] = version
        for event_version, action, member in connection.presence_backlog.pop(channel, ()):
            if event_version > version:
                connection.send(presence_frame(channel, action, member))

    async def rejoin_presence(self) -> None:
        """Add every local presence entry again (this node had been taken for dead)."""
        logger.warning("rtbridge: this node's presence had lapsed; joining its members again")
        for channel in self.presence_channels():
            for connection in tuple(self._channels.get(channel, ())):
                grant = connection.grants.get(channel)
                if grant is not None and grant.member is not None:
                    await self.broker.presence.join(channel, connection.socket_id, grant.member)

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
        now = time.monotonic()
        self._revocations[(user_id, channel)] = (revoked_at, now + DEFAULT_TOKEN_TTL)
        ended = 0
        for connection in tuple(self._channels.get(channel, ())):
            grant = connection.grants.get(channel)
            if grant is not None and grant.user_id == user_id:
                self.unsubscribe(connection, channel)
                connection.send(revoked_frame(channel))
                ended += 1
        self.stats.revoked += ended
        return ended

    def revoked_at(self, user_id: str, channel: str) -> float | None:
        """Return when this node last saw ``user_id``'s access to ``channel`` revoked."""
        entry = self._revocations.get((user_id, channel))
        return entry[0] if entry is not None else None

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run ``coroutine`` in the background, logging its failure; shutdown waits for it."""
        task = asyncio.ensure_future(_logged(coroutine))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = 3.0) -> None:
        """Wait up to ``timeout`` for the background tasks (presence leaves) to finish."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

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
        if self._revocations and heartbeat_due:
            self._revocations = {
                key: value for key, value in self._revocations.items() if value[1] > now
            }
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


async def _logged(coroutine: Coroutine[Any, Any, Any]) -> None:
    try:
        await coroutine
    except Exception as exc:
        logger.warning("rtbridge: background presence update failed: %s", exc)
