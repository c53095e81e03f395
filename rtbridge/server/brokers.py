"""Brokers feed a hub: in-memory (this process) or Redis pub/sub (any number of nodes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Iterable
from typing import Any, cast

from .. import conf
from ..conf import SERVER_DEFAULTS, HistorySettings
from ..exceptions import InvalidPosition
from ..history import Position, Replay, new_epoch, replay_from
from ..messages import Message
from ..redis_target import PRIMARY_CHECK_INTERVAL, ClusterRedis, RedisTarget, SentinelRedis
from ..redis_wire import (
    DEFAULT_PREFIX,
    DEFAULT_URL,
    LUA_APPEND,
    LUA_READ,
    PresenceChange,
    Revocation,
    append_arguments,
    channel_from_key,
    channel_key,
    check_prefix,
    control_channel,
    decode_control,
    decode_message,
    decode_whisper,
    encode_whisper,
    group_by_slot,
    is_control,
    is_whisper,
    position_key,
    read_arguments,
    read_result,
    revocation_key,
)
from .events import BrokerEvents, PresenceEvents
from .local_history import LocalHistory
from .logs import event
from .presence import MemoryPresence, Presence, RedisPresence
from .redis_client import coerce_target, open_client, stale_primary
from .tasks import cancel_and_wait

__all__ = ["Broker", "MemoryBroker", "RedisBroker"]

#: Seconds a history read (a resume, a catch-up) may take before it counts as failed.
HISTORY_TIMEOUT = 10.0
#: The longest the Redis reader delivers buffered messages before it lets the loop run
#: other callbacks (a burst of thousands would otherwise be one callback).
READ_SLICE_SECONDS = 0.003

logger = logging.getLogger("rtbridge.server")


def reconnect_wait(delay: float, cap: float) -> float:
    """Return the jittered wait before the next reconnect attempt: never above ``cap``.

    Between half and all of ``delay`` (itself doubled per failure up to ``cap``), so nodes
    that lost Redis together do not retry in step; ``reconnect_max_delay`` is a real bound.
    """
    return min(delay, cap) * (0.5 + 0.5 * random.random())


class Broker:
    """Bring messages to a node: ``start(events)`` delivers to ``events`` until ``stop()``.

    The hub tells the broker which channels it needs (``subscribe``/``unsubscribe``) and asks
    it for positions and history (``replay``). This base class is the in-memory broker:
    messages come only from this process and get their positions here (``publish``), whispers
    go straight back to the node, and presence lives in the node's memory. ``history``:
    the bounds of ``RTBRIDGE_HISTORY`` (default: read from the settings).
    """

    name = "broker"
    _events: BrokerEvents | None = None
    #: Times the connection was re-established, and messages dropped as malformed.
    reconnects = 0
    dropped = 0

    def __init__(self, *, history: HistorySettings | None = None) -> None:
        self.history = history or conf.history()
        self._local = LocalHistory(self.history)

    def publish(self, message: Message, published_at: float | None = None) -> None:
        """Give ``message`` its positions and deliver it to this node (on the node's loop).

        ``published_at``: ``time.perf_counter()`` when it was handed over (for the latency).
        """
        events = self._events
        if events is None:
            raise RuntimeError("the broker is not started")
        local = self._local
        payload = message.payload.encode("utf-8")
        for channel in message.channels:
            position = local.append(channel, message.event, message.payload, message.exclude)
            events.deliver(
                channel,
                position.offset,
                position.epoch,
                message.event,
                payload,
                message.exclude,
                published_at,
            )

    async def replay(
        self, channel: str, since: Position | None, *, delivered: bool = False
    ) -> Replay:
        """Return the top of ``channel`` and, from ``since``, the messages after it.

        ``delivered``: ``since`` is a position this node delivered itself (not a client's).
        Follows ``history.replay_from``, except that a position beyond the top answers
        ``recovered: False`` instead of raising.
        """
        return self._local.replay(channel, since)

    async def keep(self, channels: Iterable[str]) -> None:
        """Keep the positions of ``channels`` alive (they have subscribers here)."""
        self._local.keep(channels)

    def make_presence(self, events: PresenceEvents, node_id: str) -> Presence:
        """Return the presence store that goes with this broker (node entries in memory)."""
        return MemoryPresence(events)

    async def start(self, events: BrokerEvents) -> None:
        """Start delivering to ``events`` (called on the server's loop)."""
        self._events = events

    async def stop(self) -> None:
        """Stop listening and release connections."""

    async def whisper(
        self, channel: str, event: str, data_json: bytes, user_id: str | None, sender: str
    ) -> None:
        """Relay a whisper to the subscribers of ``channel`` (on every node)."""
        if self._events is not None:
            self._events.deliver_whisper(channel, event, data_json, user_id, sender)

    async def revoked_at(self, user_id: str, channel: str) -> float | None:
        """Return when the nodes' shared store saw ``user_id`` lose ``channel`` (none here)."""
        return None

    @property
    def connected(self) -> bool:
        """Return whether messages can arrive right now."""
        return True

    @property
    def starting(self) -> bool:
        """Return whether the broker is still making its first connection (worth waiting for)."""
        return False

    def subscribe(self, channel: str) -> Awaitable[None] | None:
        """Start listening to ``channel``; return an awaitable done once it is in effect."""
        return None

    def unsubscribe(self, channel: str) -> None:
        """Stop listening to ``channel``."""

    def describe(self) -> str:
        """Return a short description for logs."""
        return self.name


class MemoryBroker(Broker):
    """Messages come only from this process (``LocalBackend`` and ``Server.publish``).

    Positions are given in this process, on the node's loop, in the order messages reach
    it; history lives in memory (lost with the process, so every epoch is new after a start).
    """

    name = "memory"


class RedisBroker(Broker):
    """Listen to Redis pub/sub for the channels local connections want.

    A Redis channel is subscribed while at least one local connection wants it (the hub
    counts). After a lost connection the broker reconnects with exponential backoff, resubscribes
    every wanted channel and sends ``gap`` frames on them, so clients refetch.

    ``target`` is a Redis URL or a :mod:`rtbridge.redis_target` target (Sentinel, Cluster);
    with Sentinel each reconnect asks the sentinels for the primary, so a failover costs one
    reconnect.
    """

    name = "redis"

    def __init__(
        self,
        target: str | RedisTarget = DEFAULT_URL,
        prefix: str = DEFAULT_PREFIX,
        *,
        reconnect_max_delay: float = SERVER_DEFAULTS["reconnect_max_delay"],
        socket_connect_timeout: float = 2.0,
        ping_interval: float = 15.0,
        presence_ttl: float = SERVER_DEFAULTS["presence_ttl"],
        command_timeout: float = 2.0,
        history: HistorySettings | None = None,
    ) -> None:
        self.history = history or conf.history()
        self.target = coerce_target(target, "RedisBroker url")
        self.presence_ttl = presence_ttl
        # Presence, whisper and revocation commands give up after this long, so a frozen
        # Redis cannot hold a subscribe (or the socket's next frames) forever.
        self.command_timeout = command_timeout
        self.prefix = check_prefix(prefix, "RedisBroker prefix")
        self.reconnect_max_delay = max(0.05, reconnect_max_delay)
        self.socket_connect_timeout = socket_connect_timeout
        # A silent connection is PINGed after this long and given up after twice as long,
        # so a frozen Redis or a half-open TCP connection is noticed (closed ones at once).
        self.ping_interval = ping_interval
        # A name no logical channel can have (':' and '!' are outside the alphabet), so the
        # pub/sub connection exists even while no client wants anything.
        self._control = control_channel(prefix).encode()
        self._client: Any = None
        self._read_script: Any = None
        self._append_script: Any = None
        self._pubsub: Any = None
        self._queue: asyncio.Queue[tuple[str, list[bytes]]] | None = None
        self._confirm: dict[bytes, list[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._connected = False
        self._ever_connected = asyncio.Event()
        # Strong references: the loop keeps only weak ones to running tasks.
        self._tasks: set[asyncio.Task[Any]] = set()
        self.reconnects = 0
        self.dropped = 0
        #: rtb1 bodies (published without a position) delivered as they came.
        self.unpositioned = 0
        self._presence: Presence | None = None

    def describe(self) -> str:
        """Return ``redis <where, without password> prefix <prefix>``."""
        return f"redis {self.target.describe()} prefix {self.prefix!r}"

    @property
    def connected(self) -> bool:
        """Return whether the pub/sub connection is up."""
        return self._connected

    @property
    def starting(self) -> bool:
        """Return whether the first connection to Redis is still to come."""
        return not self._ever_connected.is_set()

    def make_presence(self, events: PresenceEvents, node_id: str) -> Presence:
        """Return presence kept in this Redis, shared with every node on the same prefix.

        The broker restores it right after each reconnect (see ``RedisPresence.begin_restore``).
        """
        self._presence = RedisPresence(
            events,
            self.target,
            self.prefix,
            node_id,
            self.presence_ttl,
            command_timeout=self.command_timeout,
            socket_connect_timeout=self.socket_connect_timeout,
        )
        return self._presence

    async def start(self, events: BrokerEvents, wait: float = 2.0) -> None:
        """Connect in the background; wait up to ``wait`` seconds for the first connection."""
        self._events = events
        self._client = open_client(self.target, self.socket_connect_timeout)
        self._read_script = self._client.register_script(LUA_READ)
        self._append_script = self._client.register_script(LUA_APPEND)
        self._task = asyncio.create_task(self._run(events), name="rtbridge-redis-broker")
        try:
            await asyncio.wait_for(self._ever_connected.wait(), wait)
        except asyncio.TimeoutError:
            logger.error(
                "rtbridge: cannot reach Redis at %s yet; serving sockets and retrying",
                self.target.describe(),
            )

    async def stop(self) -> None:
        """Stop the reader and close the connection."""
        reader = [] if self._task is None else [self._task]
        await cancel_and_wait([*self._tasks, *reader])
        self._task = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    def subscribe(self, channel: str) -> Awaitable[None] | None:
        """Queue a SUBSCRIBE; the result completes when Redis confirms it."""
        if not self._connected or self._queue is None:
            return None  # resubscribed (with a gap frame) once Redis is back
        name = channel_key(self.prefix, channel)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(name, []).append(future)
        self._queue.put_nowait(("subscribe", [name]))
        return future

    def unsubscribe(self, channel: str) -> None:
        """Queue an UNSUBSCRIBE."""
        if self._connected and self._queue is not None:
            self._queue.put_nowait(("unsubscribe", [channel_key(self.prefix, channel)]))

    async def whisper(
        self, channel: str, event: str, data_json: bytes, user_id: str | None, sender: str
    ) -> None:
        """Publish the whisper on the channel's pub/sub name (nodes with subscribers get it)."""
        body = encode_whisper(event, data_json, user_id, sender)
        try:
            await asyncio.wait_for(
                self._publish_body(channel_key(self.prefix, channel), body),
                self.command_timeout,
            )
        except Exception as exc:  # whispers are ephemeral: log, do not fail the socket
            logger.warning("rtbridge: could not relay a whisper through Redis: %s", exc)

    def _publish_body(self, name: bytes, body: bytes) -> Awaitable[Any]:
        """Send ``body`` on the pub/sub name ``name`` (``ClusterBroker``: on its shard)."""
        return cast(Awaitable[Any], self._client.publish(name, body))

    def publish(self, message: Message, published_at: float | None = None) -> None:
        """Publish ``message`` through Redis (to every node), as ``RedisBackend`` does.

        Runs in the background on the node's loop; a failure is logged. (The latency of a
        message through Redis starts when the node receives it, so ``published_at`` is not
        used.)
        """
        self._spawn(self._publish(message))

    async def _publish(self, message: Message) -> None:
        history = self.history
        sharded = isinstance(self.target, ClusterRedis)
        # On Redis Cluster one call per hash slot of the channels (a script stays in one).
        groups = group_by_slot([message], self.prefix) if sharded else [([0], None)]
        calls = []
        for _indexes, channels in groups:
            keys, args = append_arguments(
                [message],
                self.prefix,
                epoch=new_epoch(),
                size=history.size if history.enabled else 0,
                ttl=history.ttl,
                sharded=sharded,
                channels=channels,
            )
            calls.append(self._append_script(keys=keys, args=args))
        try:
            await asyncio.wait_for(asyncio.gather(*calls), self.command_timeout)
        except Exception as exc:
            logger.warning("rtbridge: could not publish %r through Redis: %s", message, exc)

    async def replay(
        self, channel: str, since: Position | None, *, delivered: bool = False
    ) -> Replay:
        """Read the top of ``channel`` and the messages after ``since`` in one script call.

        Raises what Redis raises (or ``TimeoutError`` after ``command_timeout``).
        """
        history = self.history
        keys, args = read_arguments(
            self.prefix,
            channel,
            epoch=new_epoch(),
            ttl=history.ttl,
            since=since,
            delivered=delivered,
            limit=history.size if history.enabled or delivered else 0,
        )
        # A resume waits for its answer; give a large read (thousands of messages on a busy
        # node) longer than the other commands before answering recovered: false.
        result = await asyncio.wait_for(
            self._read_script(keys=keys, args=args), max(self.command_timeout, HISTORY_TIMEOUT)
        )
        top, entries = read_result(result)
        if since is not None and not history.enabled and not delivered:
            return Replay(channel, top.offset, top.epoch, False)
        try:
            return replay_from(channel, top, since, lambda _offset: entries)
        except InvalidPosition:
            return Replay(channel, top.offset, top.epoch, False)

    async def keep(self, channels: Iterable[str]) -> None:
        """Renew the expiry of the positions of ``channels`` (one pipelined round trip)."""
        names = list(channels)
        if not names or self._client is None:
            return
        milliseconds = max(1, round(self.history.ttl * 1000))
        pipe = self._client.pipeline(transaction=False)
        for channel in names:
            pipe.pexpire(position_key(self.prefix, channel), milliseconds)
        await asyncio.wait_for(pipe.execute(), self.command_timeout)

    def _unpositioned(self, channel: str) -> None:
        self.unpositioned += 1
        if self.unpositioned == 1:
            logger.warning(
                "rtbridge: a message on %r came without a position (an 'rtb1' body: an older "
                "rtbridge or another program published it); it is delivered, but clients "
                "cannot resume across it. Publish with RedisBackend of this version.",
                channel,
            )

    async def revoked_at(self, user_id: str, channel: str) -> float | None:
        """Return the revocation time kept in Redis (``None`` if Redis cannot say, logged)."""
        try:
            value = await asyncio.wait_for(
                self._client.get(revocation_key(self.prefix, user_id, channel)),
                self.command_timeout,
            )
        except Exception as exc:
            logger.warning("rtbridge: cannot check revocations in Redis: %s", exc)
            return None
        return float(value) if value is not None else None

    def _control_event(self, events: BrokerEvents, body: bytes) -> None:
        try:
            event = decode_control(body)
            if isinstance(event, PresenceChange):
                events.presence_event(event.channel, event.action, event.member, event.version)
            elif isinstance(event, Revocation):
                events.revoke(event.user_id, event.channel, event.at)
        except (ValueError, KeyError, TypeError) as exc:
            self.dropped += 1
            logger.warning("rtbridge: dropped a control event: %s", exc)

    async def _run(self, events: BrokerEvents) -> None:
        delay = 0.1
        while True:
            pubsub = self._client.pubsub()
            writer: asyncio.Task[None] | None = None
            watcher: asyncio.Task[None] | None = None
            try:
                await pubsub.subscribe(self._control)
                # From here to the first await, the hub cannot change: the snapshot of
                # channels and the switch to "connected" happen together.
                queue: asyncio.Queue[tuple[str, list[bytes]]] = asyncio.Queue()
                self._pubsub, self._queue, self._connected = pubsub, queue, True
                channels = events.channels()
                names = [channel_key(self.prefix, channel) for channel in channels]
                confirmed = []
                if names:
                    for name in names:
                        future = asyncio.get_running_loop().create_future()
                        self._confirm.setdefault(name, []).append(future)
                        confirmed.append(future)
                    queue.put_nowait(("subscribe", names))
                writer = asyncio.create_task(self._write(pubsub, queue))
                if isinstance(self.target, SentinelRedis):
                    watcher = asyncio.create_task(self._watch_primary(pubsub))
                restored: Awaitable[None] | None = None
                if self._ever_connected.is_set():
                    self.reconnects += 1
                    # Redis may have restarted empty: this node's presence entries go back
                    # before any client is told to subscribe again (and joins wait for it).
                    if self._presence is not None:
                        restored = self._presence.begin_restore()
                    logger.warning(
                        "rtbridge: reconnected to Redis at %s; resubscribing %d channel(s)",
                        self.target.describe(),
                        len(names),
                        extra=event("broker.reconnected"),
                    )
                else:
                    logger.info("rtbridge: connected to Redis at %s", self.target.describe())
                    self._ever_connected.set()
                if channels:
                    # Messages published while Redis was away reach nobody by pub/sub: the
                    # hub replays them from history once the subscriptions (and this
                    # node's presence entries) are back.
                    self._spawn(self._resync_after(events, confirmed, channels, restored))
                delay = 0.1
                await self._read(events, pubsub, writer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                wait = reconnect_wait(delay, self.reconnect_max_delay)
                logger.warning(
                    "rtbridge: lost Redis at %s (%s: %s); retrying in %.2fs",
                    self.target.describe(),
                    type(exc).__name__,
                    exc,
                    wait,
                    extra=event("broker.lost"),
                )
            else:
                wait = reconnect_wait(delay, self.reconnect_max_delay)
            finally:
                if self._connected:
                    # Until the hub has resynchronized, live messages are held back.
                    events.broker_lost()
                self._connected = False
                self._queue = None
                self._pubsub = None
                for helper in (writer, watcher):
                    if helper is not None:
                        helper.cancel()
                # Waiting subscribers are acked now; the channel is resubscribed on reconnect.
                for futures in self._confirm.values():
                    for future in futures:
                        if not future.done():
                            future.set_result(None)
                self._confirm.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.reconnect_max_delay)

    async def _write(self, pubsub: Any, queue: asyncio.Queue[tuple[str, list[bytes]]]) -> None:
        # One writer keeps SUBSCRIBE/UNSUBSCRIBE in the order the hub asked for them.
        while True:
            op, names = await queue.get()
            try:
                if op == "subscribe":
                    await pubsub.subscribe(*names)
                else:
                    await pubsub.unsubscribe(*names)
            except Exception as exc:
                # The reader sees the same failure and reconnects; nothing else to do here.
                logger.debug("rtbridge: Redis %s failed: %s", op, exc)
                return

    async def _watch_primary(self, pubsub: Any) -> None:
        # Every PRIMARY_CHECK_INTERVAL: is this pub/sub connection still on the primary the
        # sentinels name? If not (a failover that left the old primary up), close the pub/sub:
        # the reader fails at once and the loop reconnects (to the new primary) and resyncs.
        # Closing, not disconnecting: redis-py would silently reconnect a disconnected
        # pub/sub on its next read, skipping the resync.
        while True:
            await asyncio.sleep(PRIMARY_CHECK_INTERVAL)
            primary = await stale_primary(self._client, pubsub)
            if primary is not None:
                logger.warning(
                    "rtbridge: the sentinels name %s:%d as primary now; moving there",
                    *primary,
                )
                await pubsub.aclose()
                return

    async def _resync_after(
        self,
        events: BrokerEvents,
        confirmed: list[asyncio.Future[None]],
        channels: list[str],
        restored: Awaitable[None] | None = None,
    ) -> None:
        waiting: list[Awaitable[Any]] = [*confirmed, *([restored] if restored else [])]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waiting), 10.0)
        events.resync(channels)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _body(self, events: BrokerEvents, name: bytes, data: bytes) -> None:
        """Hand what arrived on pub/sub channel ``name`` to the hub (or drop it, counted)."""
        if is_control(data):
            # Presence changes and revocations travel on their channel's own channel.
            self._control_event(events, data)
            return
        whisper = None
        try:
            channel = channel_from_key(self.prefix, name)
            if is_whisper(data):
                whisper = decode_whisper(data)
            else:
                message = decode_message(data)
        except (ValueError, UnicodeDecodeError) as exc:
            self.dropped += 1
            logger.warning("rtbridge: dropped a Redis message: %s", exc)
            return
        if whisper is None:
            if message.offset is None:
                self._unpositioned(channel)
            events.deliver(
                channel,
                message.offset,
                message.epoch,
                message.event,
                message.payload,
                message.exclude,
            )
        else:
            events.deliver_whisper(
                channel, whisper.event, whisper.data_json, whisper.user_id, whisper.sender
            )

    async def _read(self, events: BrokerEvents, pubsub: Any, writer: asyncio.Task[None]) -> None:
        awaiting_pong = False
        clock = time.perf_counter
        yield_at = clock() + READ_SLICE_SECONDS
        while True:
            if writer.done():
                # Its command failed: the connection is broken even if reads still work.
                raise ConnectionError("a SUBSCRIBE/UNSUBSCRIBE command failed")
            if clock() >= yield_at:
                # Messages already buffered are read without ever waiting, so a burst would
                # hold the loop for as long as it lasts: let the rest of the loop run.
                await asyncio.sleep(0)
                yield_at = clock() + READ_SLICE_SECONDS
            item = await pubsub.get_message(timeout=self.ping_interval)
            if item is None:
                if awaiting_pong:
                    raise ConnectionError(
                        f"Redis did not answer a PING within {self.ping_interval:g}s"
                    )
                await pubsub.ping()
                awaiting_pong = True
                continue
            awaiting_pong = False
            kind = item["type"]
            if kind == "message" and item["channel"] == self._control:
                self._control_event(events, item["data"])
            elif kind == "message":
                self._body(events, item["channel"], item["data"])
            elif kind == "subscribe":
                for future in self._confirm.pop(item["channel"], ()):
                    if not future.done():
                        future.set_result(None)
