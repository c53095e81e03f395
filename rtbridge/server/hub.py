"""The hub: which connections are open and subscribed where, the fan-out to them, and the
merge of live messages with history by offset."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Iterable, Iterator
from typing import Any, Protocol

from ..channel_names import PRESENCE_PREFIX
from ..history import Position
from .brokers import Broker
from .events import PresenceEntry
from .feeds import UNKNOWN, Feed, Held, Join, ReadBatch, ReplayFrame, Subscriber
from .protocol import (
    CloseCode,
    gap_frame,
    json_string,
    message_frame,
    presence_frame,
    skip_frame,
    unpositioned_frame,
    whisper_frame,
)
from .revocations import Revocations
from .spread import Spreader
from .stats import NodeStats

__all__ = ["Hub", "Subscriber"]

logger = logging.getLogger("rtbridge.server")

# How long a subscribe waits for the broker (Redis) to say where the channel is before it is
# acknowledged anyway (at an unknown position, followed by a gap once it is known).
SUBSCRIBE_CONFIRM_TIMEOUT = 5.0
#: Live messages a channel, or one joining subscriber, holds back while it catches up from
#: history. Past it a channel drops later ones (it reads them back from history when the next
#: one shows the hole) and a subscriber is closed as a slow consumer.
HOLD_LIMIT = 10_000
#: How long subscribers resuming in the same epoch gather to share one history read.
READ_GATHER_SECONDS = 0.005
_EVENT_CACHE_SIZE = 1024


class LatencyRecorder(Protocol):
    """Where the hub reports each message it fanned out (the metrics' latency histogram)."""

    def delivered(self, started: float) -> None:
        """Note a message that reached the node at ``started`` (``time.perf_counter()``)."""


class Hub:
    """Route what reaches the node to the local connections subscribed to each channel.

    Each message frame is encoded once per channel and the same bytes are written to every
    subscriber; a channel with thousands of subscribers gets them in slices (``Spreader``),
    each connection's frames still in the order they were sent. The broker is told to listen
    to a channel when its first local subscriber arrives and to stop when the last one leaves.
    The hub implements ``BrokerEvents`` (and so ``PresenceEvents``); what happens to one
    subscriber is the subscriber's business. All methods run on the server's loop.

    Continuity: each channel's feed knows the last position it delivered. Live messages are
    delivered in offset order; a duplicate is dropped, and a hole, an epoch change or a lost
    broker makes the feed catch up from the broker's history (replaying what is missing, or
    sending ``gap`` when history cannot prove nothing was lost) while live messages wait. A
    subscriber joins in two steps: :meth:`subscribe` listens first, then reads where it starts
    (replaying from the client's ``since`` when it can) while live messages wait for it;
    :meth:`activate`, right after its ack, writes the replay, then what waited.
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
        self._feeds: dict[str, Feed] = {}
        self._event_json: dict[str, bytes] = {}
        # Strong references: the loop keeps only weak ones to running tasks.
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Told about every message fanned out (set by the server when metrics are on).
        self.latency: LatencyRecorder | None = None
        # When the message being delivered was published (Server.publish stamps it).
        self._published_at: float | None = None
        self.spreader = Spreader()

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
        return len(self._feeds)

    def subscribers(self, channel: str) -> int:
        """Return the number of local connections subscribed (or subscribing) to ``channel``."""
        feed = self._feeds.get(channel)
        return 0 if feed is None else len(feed.subscribers) + len(feed.joining)

    def position(self, channel: str) -> Position | None:
        """Return the last position this node delivered on ``channel``, if it knows one."""
        feed = self._feeds.get(channel)
        return None if feed is None else feed.position

    def subscription_count(self) -> int:
        """Return the number of (connection, channel) subscriptions on this node."""
        return sum(len(feed.subscribers) + len(feed.joining) for feed in self._feeds.values())

    # Subscriptions ------------------------------------------------------------------------

    async def subscribe(
        self, connection: Subscriber, channel: str, since: Position | None = None
    ) -> Join:
        """Start routing ``channel`` to ``connection``; return where it starts.

        Returns once the broker listens to the channel and the start is decided (with
        ``since``: after reading history), so every message after the returned ``floor``
        reaches the connection. Until :meth:`activate`, live messages wait for it; a
        subscription the connection already has is joined again the same way.
        """
        feed = self._feeds.get(channel)
        if feed is None:
            feed = self._open(channel)
        feed.subscribers.discard(connection)
        join = Join(since, feed.gaps)
        feed.joining[connection] = join
        broker = self.broker
        if feed.epoch is None and (broker.connected or broker.starting):
            # Worth waiting: the broker is confirming, or making its first connection (a node
            # that just started). A broker that was lost is not waited for.
            try:
                await asyncio.wait_for(asyncio.shield(feed.ready.wait()), SUBSCRIBE_CONFIRM_TIMEOUT)
            except asyncio.TimeoutError:
                logger.warning(
                    "rtbridge: the broker could not say where %r is within %ss; "
                    "acknowledging at an unknown position (a gap follows)",
                    channel,
                    SUBSCRIBE_CONFIRM_TIMEOUT,
                )
            if feed.joining.get(connection) is not join:
                return join  # left (closed or unsubscribed) meanwhile
        if join.floor is None:
            await self._decide(feed, connection, join)
        return join

    async def _decide(self, feed: Feed, connection: Subscriber, join: Join) -> None:
        since = join.since
        position = feed.position
        if since is not None:
            self.stats.resumes += 1
        if position is None:
            join.decide(UNKNOWN, recovered=None if since is None else False)
            return
        if since is None:
            join.decide(position)
            return
        if not self.broker.history.enabled:
            join.decide(position, recovered=False)
        elif since == position:
            join.decide(position, recovered=True)
        else:
            try:
                top, recovered, frames = await self._read(feed, since)
            except Exception as exc:
                logger.warning(
                    "rtbridge: cannot read the history of %r (%s: %s); answering recovered: false",
                    feed.name,
                    type(exc).__name__,
                    exc,
                )
                join.decide(feed.position or position, recovered=False)
                return
            if feed.joining.get(connection) is not join:
                return
            if recovered:
                join.decide(top, ack=since, recovered=True)
                join.replay = frames
            else:
                join.decide(top, recovered=False)
        if join.recovered:
            self.stats.recovered += 1

    def activate(self, connection: Subscriber, channel: str) -> None:
        """Write what ``connection`` missed and what waited for it; then it gets live messages.

        Call right after the subscribe's ack was sent, in the same turn of the loop.
        """
        feed = self._feeds.get(channel)
        if feed is None:
            return
        join = feed.joining.get(connection)
        if join is None or join.floor is None:
            return
        floor = join.floor
        send = connection.send
        socket_id = connection.socket_id
        for offset, frame, exclude in join.replay:
            send(
                skip_frame(feed.json, offset, json_string(floor.epoch))
                if exclude == socket_id
                else frame
            )
        self.stats.replayed += len(join.replay)
        join.replay = ()
        last_gap = feed.last_gap
        if feed.epoch is not None and (
            floor is UNKNOWN
            or (join.gaps != feed.gaps and last_gap is not None and _behind(floor, last_gap))
        ):
            # The node moved on without this subscriber while it joined: it must refetch.
            gap_to = last_gap if floor is not UNKNOWN and last_gap is not None else feed.position
            assert gap_to is not None
            send(gap_frame(feed.name, gap_to))
            self.stats.gaps += 1
            floor = join.floor = gap_to
        for waited_offset, waited_epoch, waited, sender in join.pending:
            if waited_offset is None or waited_epoch is None:
                if sender != socket_id:
                    send(waited)
            elif waited_epoch == floor.epoch and waited_offset > floor.offset:
                own = sender == socket_id
                send(self._skip(feed, waited_offset, waited_epoch) if own else waited)
        join.pending = []
        if feed.epoch is not None and floor.epoch == feed.epoch and floor.offset > feed.offset:
            # Its read saw messages still on their way here: they skip it when they arrive.
            join.active = True
        else:
            del feed.joining[connection]
            feed.subscribers.add(connection)

    def unsubscribe(self, connection: Subscriber, channel: str) -> None:
        """Stop routing ``channel`` to ``connection`` (a no-op if it was not subscribed)."""
        feed = self._feeds.get(channel)
        if feed is None:
            return
        feed.subscribers.discard(connection)
        feed.joining.pop(connection, None)
        if not feed.subscribers and not feed.joining:
            del self._feeds[channel]
            # A sync or read under way finds the feed gone and stops.
            self.broker.unsubscribe(channel)

    def channels(self) -> list[str]:
        """Return the channels with local subscribers (the broker resubscribes them)."""
        return list(self._feeds)

    def _open(self, channel: str) -> Feed:
        feed = self._feeds[channel] = Feed(channel, json_string(channel))
        ready = self.broker.subscribe(channel)
        if ready is not None:
            self._spawn(self._sync_when(feed, ready))
        elif self.broker.connected:
            self._request_sync(feed)
        # Otherwise the broker resynchronizes every channel once it is connected.
        return feed

    async def _sync_when(self, feed: Feed, ready: Awaitable[None]) -> None:
        await _settle(ready)
        if self._feeds.get(feed.name) is feed:
            self._request_sync(feed)

    # Catching up from history -------------------------------------------------------------

    def broker_lost(self, channels: Iterable[str] | None = None) -> None:
        """Hold live messages back on ``channels`` (all when ``None``) until resynchronized.

        A Redis Cluster broker loses one shard's channels at a time; the others flow on.
        """
        feeds = (
            self._feeds.values()
            if channels is None
            else [feed for channel in channels if (feed := self._feeds.get(channel)) is not None]
        )
        for feed in feeds:
            feed.offline = True
            if feed.held is None:
                feed.held = []

    def resync(self, channels: Iterable[str]) -> None:
        """Catch up on ``channels`` from history (the broker listens to them again)."""
        for channel in channels:
            feed = self._feeds.get(channel)
            if feed is not None:
                self._request_sync(feed)

    def _request_sync(self, feed: Feed) -> None:
        if feed.held is None:
            feed.held = []
        feed.sync_again = True
        if not feed.syncing:
            feed.syncing = True
            self._spawn(self._sync(feed))

    async def _sync(self, feed: Feed) -> None:
        delay = 0.1
        try:
            while feed.sync_again and self._feeds.get(feed.name) is feed:
                feed.sync_again = False
                self.stats.resyncs += 1
                try:
                    replay = await self.broker.replay(feed.name, feed.position, delivered=True)
                except Exception as exc:
                    logger.warning(
                        "rtbridge: cannot read the position of %r (%s: %s)%s",
                        feed.name,
                        type(exc).__name__,
                        exc,
                        "; retrying" if self.broker.connected else "",
                    )
                    if self.broker.connected:
                        # A failed read on a live connection (a slow Redis): try again. A lost
                        # connection resynchronizes every channel once it is back.
                        feed.sync_again = True
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 5.0)
                    continue
                if self._feeds.get(feed.name) is not feed:
                    return
                self._apply(
                    feed, Position(replay.offset, replay.epoch), replay.recovered, replay.messages
                )
        finally:
            feed.syncing = False

    def _apply(
        self, feed: Feed, top: Position, recovered: bool | None, entries: Iterable[Any]
    ) -> None:
        if feed.epoch is None:
            # The first position of this feed: subscribers acknowledged before it (the broker
            # was away) must refetch; joiners without ``since`` start here.
            self._move(feed, top)
            for join in feed.joining.values():
                if join.floor is None and join.since is None:
                    join.decide(top)
            if feed.subscribers:
                self._gap(feed, top)
            feed.ready.set()
        elif recovered:
            epoch = feed.epoch
            for entry in entries:
                self._forward(
                    feed,
                    entry.offset,
                    epoch,
                    entry.event,
                    entry.payload.encode("utf-8"),
                    entry.exclude,
                )
                self.stats.replayed += 1
        elif top != feed.position:
            self._move(feed, top)
            self._gap(feed, top)
            feed.offline = False
        if feed.offline and feed.name.startswith(PRESENCE_PREFIX):
            # Messages were replayed, but presence events are in no history: the members
            # must be fetched again (a subscribe answers them).
            position = feed.position
            assert position is not None
            self._gap(feed, position)
        feed.offline = False
        held, feed.held = feed.held or [], None
        for index, item in enumerate(held):
            if feed.held is not None:
                # A hole among the held messages started another catch-up: the rest wait.
                feed.held.extend(held[index:])
                break
            self._forward(feed, *item)

    def _move(self, feed: Feed, top: Position) -> None:
        if feed.epoch is not None and feed.epoch != top.epoch:
            feed.left = feed.epoch
        feed.offset, feed.epoch = top.offset, top.epoch
        feed.epoch_json = json_string(top.epoch)

    def _gap(self, feed: Feed, top: Position) -> None:
        # Subscribers catching up with a floor in the old numbering join the others first.
        for connection, join in list(feed.joining.items()):
            if join.active:
                del feed.joining[connection]
                feed.subscribers.add(connection)
        feed.gaps += 1
        feed.last_gap = top
        self.stats.gaps += 1
        self.spreader.spread(tuple(feed.subscribers), gap_frame(feed.name, top))

    async def _read(
        self, feed: Feed, since: Position
    ) -> tuple[Position, bool, tuple[ReplayFrame, ...]]:
        # Subscribers resuming at the same moment in the same epoch (a reconnect storm, the
        # clients of a node that died) share one read, from the lowest position among them.
        batch = feed.reads.get(since.epoch)
        if batch is None:
            batch = feed.reads[since.epoch] = ReadBatch(since.offset)
            batch.result = asyncio.ensure_future(self._read_batch(feed, since.epoch, batch))
            batch.result.add_done_callback(_retrieve)
        batch.lowest = min(batch.lowest, since.offset)
        assert batch.result is not None
        top, recovered, frames = await asyncio.shield(batch.result)
        lowest = batch.lowest
        if since.offset > top.offset or top.epoch != since.epoch:
            return top, False, ()
        if recovered:
            return top, True, frames[since.offset - lowest :]
        if since.offset > lowest:
            # Trimmed past the lowest, not necessarily past this one: ask for it alone.
            return await self._read_now(feed, since)
        return top, False, ()

    async def _read_batch(
        self, feed: Feed, epoch: str, batch: ReadBatch
    ) -> tuple[Position, bool, tuple[ReplayFrame, ...]]:
        # Joiners gather for a moment, then the read is issued: after every one of them
        # joined, so its top covers what each got live before joining (what came later
        # waits in its pending list). A joiner arriving after this point needs a new read.
        await asyncio.sleep(READ_GATHER_SECONDS)
        if feed.reads.get(epoch) is batch:
            del feed.reads[epoch]
        return await self._read_now(feed, Position(batch.lowest, epoch))

    async def _read_now(
        self, feed: Feed, since: Position
    ) -> tuple[Position, bool, tuple[ReplayFrame, ...]]:
        replay = await self.broker.replay(feed.name, since)
        top = Position(replay.offset, replay.epoch)
        if not replay.recovered:
            return top, False, ()
        epoch_json = json_string(replay.epoch)
        frames = tuple(
            (
                entry.offset,
                message_frame(
                    feed.json,
                    self._event(entry.event),
                    entry.offset,
                    epoch_json,
                    entry.payload.encode("utf-8"),
                ),
                entry.exclude,
            )
            for entry in replay.messages
        )
        return top, True, frames

    # Delivery (BrokerEvents) --------------------------------------------------------------

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
        """Send the message at ``offset``/``epoch`` to the local subscribers of ``channel``.

        Returns how many got it now (0 when it waits for a catch-up or was a duplicate).
        ``published_at`` (``time.perf_counter()`` when it was published in this process)
        starts the latency the metrics record.
        """
        feed = self._feeds.get(channel)
        if feed is None:
            return 0
        if offset is None or epoch is None:
            return self._deliver_unpositioned(feed, event, payload, exclude)
        held = feed.held
        if held is not None:
            if len(held) < HOLD_LIMIT:
                held.append((offset, epoch, event, payload, exclude))
            else:
                self.stats.dropped += 1
            return 0
        self._published_at = published_at
        try:
            return self._forward(feed, offset, epoch, event, payload, exclude)
        finally:
            self._published_at = None

    def _forward(
        self, feed: Feed, offset: int, epoch: str, event: str, payload: bytes, exclude: str | None
    ) -> int:
        if epoch == feed.epoch:
            if offset <= feed.offset:
                self.stats.duplicates += 1
                return 0
            if offset != feed.offset + 1:
                return self._catch_up(feed, (offset, epoch, event, payload, exclude))
        elif epoch == feed.left:
            return 0  # a late message of the numbering this feed gave up
        else:
            return self._catch_up(feed, (offset, epoch, event, payload, exclude))
        feed.offset = offset
        frame = message_frame(feed.json, self._event(event), offset, feed.epoch_json, payload)
        subscribers = feed.subscribers
        excluded = self.connections.get(exclude) if exclude else None
        # A send may close a slow consumer; iterate over a copy so removal cannot interfere.
        if excluded is not None and excluded in subscribers:
            # The sender skips its own change, but its position must move on.
            excluded.send(skip_frame(feed.json, offset, feed.epoch_json))
            receivers = tuple(subscribers - {excluded})
        else:
            receivers = tuple(subscribers)
        sent = self.spreader.spread(receivers, frame)
        if feed.joining:
            sent += self._to_joining(feed, offset, epoch, frame, exclude)
        self.stats.messages += 1
        self.stats.frames += sent
        if self.latency is not None and sent:
            started = self._published_at
            self.latency.delivered(time.perf_counter() if started is None else started)
        return sent

    def _to_joining(
        self, feed: Feed, offset: int, epoch: str, frame: bytes, exclude: str | None
    ) -> int:
        sent = 0
        for connection, join in list(feed.joining.items()):
            if not join.active:
                if len(join.pending) < HOLD_LIMIT:
                    join.pending.append((offset, epoch, frame, exclude))
                else:
                    connection.close(
                        CloseCode.SLOW_CONSUMER,
                        f"slow consumer: more than {HOLD_LIMIT} messages while subscribing",
                    )
                continue
            floor = join.floor
            assert floor is not None
            if offset > floor.offset:
                own = exclude == connection.socket_id
                if connection.send(self._skip(feed, offset, epoch) if own else frame):
                    sent += 1
            if offset >= floor.offset and feed.joining.pop(connection, None) is not None:
                feed.subscribers.add(connection)
        return sent

    def _catch_up(self, feed: Feed, item: Held) -> int:
        # A hole or a new epoch in what the broker delivered: read what is missing first.
        self._request_sync(feed)
        assert feed.held is not None
        feed.held.append(item)
        return 0

    def _deliver_unpositioned(
        self, feed: Feed, event: str, payload: bytes, exclude: str | None
    ) -> int:
        frame = unpositioned_frame(feed.json, self._event(event), payload)
        receivers = tuple(c for c in feed.subscribers if c.socket_id != exclude)
        sent = self.spreader.spread(receivers, frame)
        for join in feed.joining.values():
            join.pending.append((None, None, frame, exclude))
        self.stats.messages += 1
        self.stats.frames += sent
        return sent

    def _skip(self, feed: Feed, offset: int, epoch: str) -> bytes:
        epoch_json = feed.epoch_json if epoch == feed.epoch else json_string(epoch)
        return skip_frame(feed.json, offset, epoch_json)

    def _event(self, event: str) -> bytes:
        event_json = self._event_json.get(event)
        if event_json is None:
            if len(self._event_json) >= _EVENT_CACHE_SIZE:
                self._event_json.clear()
            event_json = self._event_json[event] = json_string(event)
        return event_json

    def deliver_whisper(
        self, channel: str, event: str, data_json: bytes, user_id: str | None, sender: str
    ) -> int:
        """Relay a whisper to the local subscribers of ``channel`` except the sender."""
        feed = self._feeds.get(channel)
        if feed is None:
            return 0
        frame = whisper_frame(channel, event, data_json, user_id)
        own = self.connections.get(sender)
        listeners = feed.listeners()
        receivers = tuple(c for c in listeners if c is not own) if own is not None else listeners
        sent = self.spreader.spread(receivers, frame)
        self.stats.whispers += 1
        return sent

    def revoke(self, user_id: str, channel: str, revoked_at: float) -> int:
        """End ``user_id``'s subscriptions to ``channel`` on this node; return how many."""
        self.revocations.record(user_id, channel, revoked_at)
        feed = self._feeds.get(channel)
        listeners = () if feed is None else feed.listeners()
        ended = sum(connection.revoke(channel, user_id) for connection in listeners)
        self.stats.revoked += ended
        return ended

    # Keeping positions alive --------------------------------------------------------------

    async def keep_positions(self, interval: float) -> None:
        """Every ``interval`` seconds, renew the positions of the channels with subscribers.

        Without it, a channel quiet for the history ttl would start a new epoch on its next
        message, and its subscribers would refetch although they missed nothing.
        """
        while True:
            await asyncio.sleep(interval)
            try:
                await self.broker.keep(self.channels())
            except Exception as exc:  # the next round tries again
                logger.warning("rtbridge: cannot renew channel positions: %s", exc)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Presence (PresenceEvents) ------------------------------------------------------------

    def presence_event(
        self, channel: str, action: str, member: dict[str, Any], version: int
    ) -> None:
        """Send a ``join``/``leave`` to the local subscribers of ``channel`` (each decides)."""
        feed = self._feeds.get(channel)
        if feed is None:
            return
        frame = presence_frame(channel, action, member)
        for connection in feed.listeners():
            connection.presence_event(channel, action, member, version, frame)

    def presence_channels(self) -> list[str]:
        """Return the presence channels with local subscribers."""
        return [channel for channel in self._feeds if channel.startswith(PRESENCE_PREFIX)]

    def presence_entries(self) -> Iterator[PresenceEntry]:
        """Yield ``(channel, socket id, member)`` of every local presence subscription.

        Lazily: each connection is asked when reached, so one that left while the caller was
        busy with the previous entry is skipped.
        """
        for channel in self.presence_channels():
            feed = self._feeds.get(channel)
            for connection in () if feed is None else feed.listeners():
                member = connection.presence_member(channel)
                if member is not None:
                    yield channel, connection.socket_id, member


async def _settle(ready: Awaitable[None]) -> None:
    # A failed broker subscribe is retried by the broker itself after it reconnects.
    try:
        await ready
    except Exception as exc:
        logger.debug("rtbridge: broker subscribe failed (will resubscribe): %s", exc)


def _behind(floor: Position, top: Position) -> bool:
    return floor.epoch != top.epoch or floor.offset < top.offset


def _retrieve(done: asyncio.Future[Any]) -> None:
    if not done.cancelled():
        done.exception()  # retrieved here: every joiner may have left before it finished
