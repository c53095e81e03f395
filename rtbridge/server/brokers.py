"""Brokers feed a hub: in-memory (this process) or Redis pub/sub (any number of nodes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ..backends.redis import (
    CONTROL_VERSION,
    DEFAULT_PREFIX,
    DEFAULT_URL,
    control_channel,
    decode_body,
    revocation_key,
    safe_url,
)
from ..messages import Message
from .presence import MemoryPresence, Presence, RedisPresence

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["Broker", "MemoryBroker", "RedisBroker"]

logger = logging.getLogger("rtbridge.server")

#: First line of a whisper body on a channel's Redis channel.
WHISPER_VERSION = b"rtw1"
WHISPER_PREFIX = WHISPER_VERSION + b"\n"


class Broker:
    """Tell a hub about messages; the hub tells the broker which channels it needs."""

    name = "broker"
    hub: Hub | None = None
    node_id = "local"
    #: Where presence entries live (set by ``attach``; in memory unless a subclass shares
    #: them, as ``RedisBroker`` does once started).
    presence: Presence

    def attach(self, hub: Hub, node_id: str = "local") -> None:
        """Deliver to ``hub`` from now on; ``node_id`` names this node in shared state."""
        self.hub = hub
        self.node_id = node_id
        self.presence = MemoryPresence()
        self.presence.hub = hub

    async def whisper(
        self, channel: str, event: str, data_json: bytes, user_id: str | None, sender: str
    ) -> None:
        """Relay a whisper to the subscribers of ``channel`` (on every node)."""
        if self.hub is not None:
            self.hub.deliver_whisper(channel, event, data_json, user_id, sender)

    async def revoked_at(self, user_id: str, channel: str) -> float | None:
        """Return when ``user_id``'s access to ``channel`` was last revoked, if it was."""
        return self.hub.revoked_at(user_id, channel) if self.hub is not None else None

    async def start(self) -> None:
        """Start listening (called on the server's loop)."""

    async def stop(self) -> None:
        """Stop listening and release connections."""

    @property
    def connected(self) -> bool:
        """Return whether messages can arrive right now."""
        return True

    def subscribe(self, channel: str) -> Awaitable[None] | None:
        """Start listening to ``channel``; return an awaitable done once it is in effect."""
        return None

    def unsubscribe(self, channel: str) -> None:
        """Stop listening to ``channel``."""

    def describe(self) -> str:
        """Return a short description for logs."""
        return self.name


class MemoryBroker(Broker):
    """Messages come only from this process (``LocalBackend`` and ``Server.publish``)."""

    name = "memory"

    def deliver(self, message: Message) -> None:
        """Deliver ``message`` to the hub (call on the server's loop)."""
        if self.hub is not None:
            self.hub.deliver_message(message)


class RedisBroker(Broker):
    """Listen to Redis pub/sub for the channels local connections want.

    A Redis channel is subscribed while at least one local connection wants it (the hub
    counts). After a lost connection the broker reconnects with exponential backoff, resubscribes
    every wanted channel and sends ``gap`` frames on them, so clients refetch.
    """

    name = "redis"

    def __init__(
        self,
        url: str = DEFAULT_URL,
        prefix: str = DEFAULT_PREFIX,
        *,
        reconnect_max_delay: float = 5.0,
        socket_connect_timeout: float = 2.0,
        ping_interval: float = 15.0,
        presence_ttl: float = 15.0,
        command_timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.presence_ttl = presence_ttl
        # Presence, whisper and revocation commands give up after this long, so a frozen
        # Redis cannot hold a subscribe (or the socket's next frames) forever.
        self.command_timeout = command_timeout
        self.prefix = prefix
        self.reconnect_max_delay = max(0.05, reconnect_max_delay)
        self.socket_connect_timeout = socket_connect_timeout
        # A silent connection is PINGed after this long and given up after twice as long,
        # so a frozen Redis or a half-open TCP connection is noticed (closed ones at once).
        self.ping_interval = ping_interval
        # A name no logical channel can have (':' and '!' are outside the alphabet), so the
        # pub/sub connection exists even while no client wants anything.
        self._control = control_channel(prefix).encode()
        self._prefix_bytes = prefix.encode("utf-8")
        self._client: Any = None
        self._pubsub: Any = None
        self._queue: asyncio.Queue[tuple[str, list[bytes]]] | None = None
        self._confirm: dict[bytes, list[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._connected = False
        self._ever_connected = asyncio.Event()
        # Strong references: the loop keeps only weak ones to running tasks.
        self._gap_tasks: set[asyncio.Task[None]] = set()
        self.reconnects = 0
        self.dropped = 0

    def describe(self) -> str:
        """Return ``redis <url without password> prefix <prefix>``."""
        return f"redis {safe_url(self.url)} prefix {self.prefix!r}"

    @property
    def connected(self) -> bool:
        """Return whether the pub/sub connection is up."""
        return self._connected

    async def start(self, wait: float = 2.0) -> None:
        """Connect in the background; wait up to ``wait`` seconds for the first connection."""
        import redis.asyncio
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No silent retries inside redis-py: a lost connection must reach _run, which
        # resubscribes and sends gap frames.
        self._client = redis.asyncio.Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=self.socket_connect_timeout,
            socket_keepalive=True,
        )
        presence = RedisPresence(
            self._client,
            self.prefix,
            self.node_id,
            control_channel(self.prefix),
            self.presence_ttl,
            command_timeout=self.command_timeout,
        )
        presence.hub = self.hub
        self.presence = presence
        self._task = asyncio.create_task(self._run(), name="rtbridge-redis-broker")
        try:
            await asyncio.wait_for(self._ever_connected.wait(), wait)
        except asyncio.TimeoutError:
            logger.error(
                "rtbridge: cannot reach Redis at %s yet; serving sockets and retrying",
                safe_url(self.url),
            )
        try:
            await presence.start()
        except Exception as exc:  # retried by the server's presence refresh
            logger.warning("rtbridge: cannot announce this node's presence yet: %s", exc)

    async def stop(self) -> None:
        """Stop the reader and close the connection."""
        if isinstance(self.presence, RedisPresence):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.presence.stop(), 2.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    def subscribe(self, channel: str) -> Awaitable[None] | None:
        """Queue a SUBSCRIBE; the result completes when Redis confirms it."""
        if not self._connected or self._queue is None:
            return None  # resubscribed (with a gap frame) once Redis is back
        name = self._prefix_bytes + channel.encode("utf-8")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(name, []).append(future)
        self._queue.put_nowait(("subscribe", [name]))
        return future

    def unsubscribe(self, channel: str) -> None:
        """Queue an UNSUBSCRIBE."""
        if self._connected and self._queue is not None:
            self._queue.put_nowait(("unsubscribe", [self._prefix_bytes + channel.encode("utf-8")]))

    async def whisper(
        self, channel: str, event: str, data_json: bytes, user_id: str | None, sender: str
    ) -> None:
        """PUBLISH the whisper on the channel's Redis channel (nodes with subscribers get it).

        Body: ``rtw1\n<event>\n<sender socket id>\n<user id or empty>\n<data JSON>``.
        """
        body = b"\n".join(
            (
                WHISPER_VERSION,
                event.encode("ascii"),
                sender.encode("ascii"),
                (user_id or "").replace("\n", " ").encode("utf-8"),
                data_json,
            )
        )
        try:
            await asyncio.wait_for(
                self._client.publish(self._prefix_bytes + channel.encode("utf-8"), body),
                self.command_timeout,
            )
        except Exception as exc:  # whispers are ephemeral: log, do not fail the socket
            logger.warning("rtbridge: could not relay a whisper through Redis: %s", exc)

    async def revoked_at(self, user_id: str, channel: str) -> float | None:
        """Return the revocation time from Redis (or from this node's memory if Redis fails)."""
        seen = await super().revoked_at(user_id, channel)
        try:
            value = await asyncio.wait_for(
                self._client.get(revocation_key(self.prefix, user_id, channel)),
                self.command_timeout,
            )
        except Exception as exc:
            logger.warning("rtbridge: cannot check revocations in Redis: %s", exc)
            return seen
        stored = float(value) if value is not None else None
        if stored is None or seen is None:
            return stored if seen is None else seen
        return max(stored, seen)

    def _control_event(self, body: bytes) -> None:
        hub = self.hub
        if hub is None or not body.startswith(CONTROL_VERSION + b"\n"):
            return
        try:
            event = json.loads(body[len(CONTROL_VERSION) + 1 :])
            kind = event["t"]
            if kind == "presence":
                hub.presence_event(event["c"], event["a"], event["m"], int(event["v"]))
            elif kind == "revoke":
                hub.revoke(str(event["u"]), event["c"], float(event["at"]))
        except (ValueError, KeyError, TypeError) as exc:
            self.dropped += 1
            logger.warning("rtbridge: dropped a control event: %s", exc)

    async def _run(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._client.pubsub()
            writer: asyncio.Task[None] | None = None
            try:
                await pubsub.subscribe(self._control)
                # From here to the first await, the hub cannot change: the snapshot of
                # channels and the switch to "connected" happen together.
                queue: asyncio.Queue[tuple[str, list[bytes]]] = asyncio.Queue()
                self._pubsub, self._queue, self._connected = pubsub, queue, True
                channels = self.hub.channels() if self.hub is not None else []
                names = [self._prefix_bytes + c.encode("utf-8") for c in channels]
                confirmed = []
                if names:
                    for name in names:
                        future = asyncio.get_running_loop().create_future()
                        self._confirm.setdefault(name, []).append(future)
                        confirmed.append(future)
                    queue.put_nowait(("subscribe", names))
                writer = asyncio.create_task(self._write(pubsub, queue))
                if self._ever_connected.is_set():
                    self.reconnects += 1
                    logger.warning(
                        "rtbridge: reconnected to Redis at %s; resubscribing %d channel(s)",
                        safe_url(self.url),
                        len(names),
                    )
                else:
                    logger.info("rtbridge: connected to Redis at %s", safe_url(self.url))
                    self._ever_connected.set()
                if channels:
                    # Clients subscribed while Redis was away may have missed messages.
                    task = asyncio.create_task(self._gap_after(confirmed, channels))
                    self._gap_tasks.add(task)
                    task.add_done_callback(self._gap_tasks.discard)
                delay = 0.1
                await self._read(pubsub, writer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "rtbridge: lost Redis at %s (%s: %s); retrying in %.1fs",
                    safe_url(self.url),
                    type(exc).__name__,
                    exc,
                    delay,
                )
            finally:
                self._connected = False
                self._queue = None
                self._pubsub = None
                if writer is not None:
                    writer.cancel()
                # Waiting subscribers are acked now; the channel is resubscribed on reconnect.
                for futures in self._confirm.values():
                    for future in futures:
                        if not future.done():
                            future.set_result(None)
                self._confirm.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(delay * (0.5 + random.random()))
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

    async def _gap_after(self, confirmed: list[asyncio.Future[None]], channels: list[str]) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*confirmed), 10.0)
        if self.hub is not None:
            self.hub.gap(channels)

    async def _read(self, pubsub: Any, writer: asyncio.Task[None]) -> None:
        hub = self.hub
        prefix_length = len(self._prefix_bytes)
        awaiting_pong = False
        while True:
            if writer.done():
                # Its command failed: the connection is broken even if reads still work.
                raise ConnectionError("a SUBSCRIBE/UNSUBSCRIBE command failed")
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
                self._control_event(item["data"])
            elif kind == "message" and item["data"].startswith(WHISPER_PREFIX):
                parts = item["data"].split(b"\n", 4)
                if len(parts) == 5 and hub is not None:
                    channel = item["channel"][prefix_length:].decode("utf-8")
                    hub.deliver_whisper(
                        channel,
                        parts[1].decode("ascii"),
                        parts[4],
                        parts[3].decode("utf-8") or None,
                        parts[2].decode("ascii"),
                    )
            elif kind == "message":
                try:
                    event, exclude, payload = decode_body(item["data"])
                    channel = item["channel"][prefix_length:].decode("utf-8")
                except (ValueError, UnicodeDecodeError) as exc:
                    self.dropped += 1
                    logger.warning("rtbridge: dropped a Redis message: %s", exc)
                    continue
                if hub is not None:
                    hub.deliver(channel, event, payload, exclude)
            elif kind == "subscribe":
                for future in self._confirm.pop(item["channel"], ()):
                    if not future.done():
                        future.set_result(None)
