"""The Redis Cluster broker: sharded pub/sub, one subscription connection per shard needed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, cast

from ..conf import SERVER_DEFAULTS, HistorySettings
from ..redis_target import ClusterRedis, RedisTarget
from ..redis_wire import (
    DEFAULT_PREFIX,
    LUA_APPEND,
    LUA_READ,
    channel_from_key,
    channel_key,
)
from .brokers import RedisBroker
from .events import BrokerEvents
from .logs import event
from .redis_client import open_client
from .shards import ShardedSubscriptions
from .tasks import cancel_and_wait

__all__ = ["ClusterBroker", "redis_broker"]

logger = logging.getLogger("rtbridge.server")


class ClusterBroker(RedisBroker):
    """Listen to Redis Cluster with sharded pub/sub (``SSUBSCRIBE``, Redis 7+).

    A channel's messages, whispers, presence changes and revocations are ``SPUBLISH``ed on
    ``<prefix>{<channel>}``, so only the shard owning its slot carries them, and only to the
    nodes subscribed there. This node holds one connection per shard that owns a channel its
    clients want (:class:`~rtbridge.server.shards.ShardedSubscriptions`). When a shard's
    connection fails, or a slot moves (resharding, failover), live messages of its channels
    are held back, the channels are subscribed again on their new owner, and the hub catches
    up from their history (in the same slot, so it moved with them), or sends ``gap``.
    Commands (history reads, presence scripts, revocation reads, whispers) go through
    redis-py's ``RedisCluster``, which follows ``MOVED``/``ASK`` by itself.
    """

    name = "redis-cluster"

    def __init__(
        self,
        target: ClusterRedis,
        prefix: str = DEFAULT_PREFIX,
        *,
        reconnect_max_delay: float = SERVER_DEFAULTS["reconnect_max_delay"],
        socket_connect_timeout: float = 2.0,
        ping_interval: float = 15.0,
        presence_ttl: float = SERVER_DEFAULTS["presence_ttl"],
        command_timeout: float = 2.0,
        history: HistorySettings | None = None,
    ) -> None:
        super().__init__(
            target,
            prefix,
            reconnect_max_delay=reconnect_max_delay,
            socket_connect_timeout=socket_connect_timeout,
            ping_interval=ping_interval,
            presence_ttl=presence_ttl,
            command_timeout=command_timeout,
            history=history,
        )
        self.cluster = target
        self.shards: ShardedSubscriptions | None = None

    @property
    def connected(self) -> bool:
        """Return whether every channel this node wants is heard now."""
        return self.shards is not None and self.shards.ready and self.shards.connected

    async def start(self, events: BrokerEvents, wait: float = 2.0) -> None:
        """Read the slot map in the background; wait up to ``wait`` seconds for it."""
        self._events = events
        self._client = open_client(self.target, self.socket_connect_timeout)
        # redis-py's RedisCluster sends each call to the shard of its first key.
        self._read_script = self._client.register_script(LUA_READ)
        self._append_script = self._client.register_script(LUA_APPEND)
        shards = self.shards = ShardedSubscriptions(
            self.cluster,
            self,
            socket_connect_timeout=self.socket_connect_timeout,
            ping_interval=self.ping_interval,
            reconnect_max_delay=self.reconnect_max_delay,
        )
        await shards.start()
        try:
            await asyncio.wait_for(shards.wait_ready(), wait)
            logger.info("rtbridge: connected to Redis at %s", self.target.describe())
        except asyncio.TimeoutError:
            logger.error(
                "rtbridge: cannot read the slot map of %s yet; serving sockets and retrying",
                self.target.describe(),
            )

    async def stop(self) -> None:
        """Close the shard connections and the cluster client."""
        await cancel_and_wait(list(self._tasks))
        if self.shards is not None:
            await self.shards.stop()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None

    def subscribe(self, channel: str) -> Awaitable[None] | None:
        """``SSUBSCRIBE`` on the owning shard; the result completes when Redis confirms it."""
        if self.shards is None:
            return None
        return self.shards.subscribe(channel_key(self.prefix, channel))

    def unsubscribe(self, channel: str) -> None:
        """``SUNSUBSCRIBE`` (the shard's connection closes with its last channel)."""
        if self.shards is not None:
            self.shards.unsubscribe(channel_key(self.prefix, channel))

    def _publish_body(self, name: bytes, body: bytes) -> Awaitable[Any]:
        """``SPUBLISH``: only the shard owning the channel's slot carries it."""
        return cast(Awaitable[Any], self._client.spublish(name, body))

    # ShardListener ------------------------------------------------------------------------

    def shard_message(self, name: bytes, data: bytes) -> None:
        """Deliver what a shard sent (messages, whispers, presence changes, revocations)."""
        if self._events is not None:
            self._body(self._events, name, data)

    def shard_lost(self, names: list[bytes]) -> None:
        """Hold live messages back on these channels until they are resynchronized."""
        channels = self._channels(names)
        if self._events is not None and channels:
            self._events.broker_lost(channels)

    def shard_restored(self, names: list[bytes]) -> None:
        """Catch up on channels heard again: what was published meanwhile reached nobody here.

        As after a reconnect to one Redis, this node's presence entries are checked (and
        added again where a shard forgot them) first; then the hub replays the missed
        messages from history, or sends ``gap`` when history cannot prove continuity.
        """
        self.reconnects += 1
        channels = self._channels(names)
        logger.warning(
            "rtbridge: %d channel(s) heard again on Redis Cluster; catching up from history",
            len(channels),
            extra=event("broker.reconnected"),
        )
        if self._events is not None and channels:
            restored = self._presence.begin_restore() if self._presence is not None else None
            self._spawn(self._resync_after(self._events, [], channels, restored))

    def _channels(self, names: list[bytes]) -> list[str]:
        channels = []
        for name in names:
            with contextlib.suppress(ValueError):
                channels.append(channel_from_key(self.prefix, name))
        return channels


def redis_broker(target: RedisTarget, prefix: str, **options: Any) -> RedisBroker:
    """Return the broker for ``target``: :class:`ClusterBroker` for a Cluster, else Redis's."""
    if isinstance(target, ClusterRedis):
        return ClusterBroker(target, prefix, **options)
    return RedisBroker(target, prefix, **options)
