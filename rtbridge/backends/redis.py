"""``redis``: publish to Redis pub/sub, where rtbridge server nodes pick messages up."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from .. import conf, redis_target, redis_wire
from ..exceptions import PublishError
from ..history import Positions, new_epoch
from ..messages import Message
from .base import BaseBackend, SelfHostedAuthMixin, import_sdk

__all__ = ["RedisBackend", "client_config_for"]

T = TypeVar("T")

logger = logging.getLogger("rtbridge.backends")

#: Messages per script call: one call blocks Redis while it runs, so a bulk save is cut in
#: pieces of this many (each still one round trip).
MESSAGES_PER_CALL = 256

# The wire format moved to rtbridge.redis_wire (shared with the server); the old names still
# work for one release.
_MOVED_TO_WIRE = frozenset(
    {
        "BODY_VERSION",
        "CONTROL_VERSION",
        "DEFAULT_PREFIX",
        "DEFAULT_URL",
        "control_channel",
        "decode_body",
        "encode_control",
        "encode_message",
        "revocation_key",
        "safe_url",
    }
)


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_WIRE:
        warnings.warn(
            f"rtbridge.backends.redis.{name} moved to rtbridge.redis_wire.{name}; import it "
            "from there (the old path goes away in the next release).",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(redis_wire, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def client_config_for(alias: str) -> dict[str, Any]:
    """Return the JS client's config for the self-hosted server: backend, url and path.

    ``url`` is the full socket URL (``public_url`` + ``path``), or ``None`` for the page's
    own host.
    """
    server = conf.server_settings()
    return {"backend": alias, "url": conf.public_socket_url(), "path": server["path"]}


class RedisBackend(SelfHostedAuthMixin, BaseBackend):
    """Publish through Redis; every rtbridge server node subscribed to a channel gets it.

    Each publish is one atomic Redis script (``redis_wire.LUA_APPEND``): per channel it takes
    the next offset, keeps the message in the channel's history (bounded by
    ``RTBRIDGE_HISTORY`` size and ttl) and ``PUBLISH``es it with its position, so every node
    sees the same positions and can replay what a client missed.

    Options (``RTBRIDGE_OPTIONS``): where Redis is, one of ``url``
    (``redis://[:password@]host:port/db``, also ``rediss://`` and ``unix://``; the default),
    ``sentinel`` (a dict: ``sentinels``, ``service_name``, ``password``...) or ``cluster``
    (a dict: ``startup_nodes``, ``password``...) as :mod:`rtbridge.redis_target` reads them;
    ``failover_wait`` (seconds a publish that Redis provably did not run, e.g. during a
    failover, is tried again; default 0 for ``url``, 10 for Sentinel and Cluster);
    ``prefix`` of the Redis keys and channel names (default ``"rtbridge:"``; server nodes
    must use the same), ``socket_timeout`` and ``socket_connect_timeout`` in seconds,
    ``max_connections`` of the pool, ``connection_options`` (more keyword arguments of
    redis-py's pool or cluster client), and ``fail_silently``.

    On Redis Cluster the script runs once per hash slot of the message's channels (every key
    of a channel is in its slot), and publishes with ``SPUBLISH``: only the shard owning the
    channel carries it.

    A publish that Redis did not take raises ``PublishError`` (or, with ``fail_silently``, is
    dropped); either way it is logged and counted in :attr:`unpublished`, and the message got
    no position, so nodes never skip an offset for it.
    """

    alias = "redis"
    sdk = ("redis", "redis")
    # The server's default outbound buffer is 1 MiB; a larger message would disconnect every
    # subscriber as a slow consumer.
    max_payload_bytes = 512 * 1024

    def __init__(
        self,
        *,
        url: str | None = None,
        sentinel: Mapping[str, Any] | None = None,
        cluster: Mapping[str, Any] | None = None,
        failover_wait: float | None = None,
        prefix: str = redis_wire.DEFAULT_PREFIX,
        socket_timeout: float = 5.0,
        socket_connect_timeout: float = 2.0,
        max_connections: int = 50,
        connection_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        where = {"url": url, "sentinel": sentinel, "cluster": cluster}
        self.target = redis_target.from_options(
            {**where, "failover_wait": failover_wait}, "RTBRIDGE_OPTIONS"
        )
        self.prefix = redis_wire.check_prefix(prefix, "RedisBackend prefix")
        self.socket_timeout = socket_timeout
        self.socket_connect_timeout = socket_connect_timeout
        self.max_connections = max_connections
        self.connection_options = dict(connection_options or {})
        # Redis Cluster carries messages with sharded pub/sub: only the shard owning the
        # channel's slot sees them (PUBLISH would be copied to every node of the cluster).
        self.cluster = isinstance(self.target, redis_target.ClusterRedis)
        self._publish_command = "spublish" if self.cluster else "publish"
        self.history = conf.history()
        #: Messages Redis did not take (every failure is also logged).
        self.unpublished = 0
        self._client: Any = None
        self._append: Any = None
        # When the sentinels were last asked which primary to publish to (monotonic time).
        self._primary_checked = 0.0
        self._lock = threading.Lock()
        # redis.asyncio clients belong to one event loop each.
        # Each with its registered append script.
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[Any, Any]
        ] = weakref.WeakKeyDictionary()

    @property
    def url(self) -> str | None:
        """Return the URL of one Redis, or ``None`` with Sentinel or Cluster."""
        return self.target.url if isinstance(self.target, redis_target.SingleRedis) else None

    def _client_kwargs(self) -> dict[str, Any]:
        return {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
            "max_connections": self.max_connections,
            "options": self.connection_options,
        }

    @property
    def client(self) -> Any:
        """Return the pooled sync client (``redis.Redis`` or ``RedisCluster``), made lazily."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import_sdk("redis", "redis", backend=self.alias)
                    self._client = redis_target.sync_client(self.target, **self._client_kwargs())
        return self._client

    def _async_client(self) -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            import_sdk("redis", "redis", backend=self.alias)
            redis_client = redis_target.async_client(self.target, **self._client_kwargs())
            client = (redis_client, redis_client.register_script(redis_wire.LUA_APPEND))
            self._async_clients[loop] = client
        return client

    def _error(self, exc: BaseException) -> PublishError:
        import redis.exceptions

        transient = isinstance(
            exc,
            (
                redis.exceptions.ConnectionError,
                redis.exceptions.TimeoutError,
                redis.exceptions.ClusterError,
                redis.exceptions.RedisClusterException,
                OSError,
            ),
        )
        if transient and redis_target.not_run(exc):
            waited = self.target.failover_wait
            hint = (
                f" (it did not run; tried again for {waited:g}s: failover_wait)"
                if waited
                else " (it did not run; is redis-server running and reachable?)"
            )
        elif transient:
            hint = (
                " (the connection was lost after sending: the message may or may not have "
                "been published, and publishing it again could deliver it twice)"
            )
        else:
            hint = ""
        return PublishError(
            f"Redis ({self.target.describe()}) did not take the message: {exc}{hint}",
            retryable=transient,
        )

    def _primary_check_due(self) -> bool:
        # With Sentinel, once a second: a failover may have left the old primary up, still
        # taking (soon lost) writes on the connections this pool holds.
        if not isinstance(self.target, redis_target.SentinelRedis):
            return False
        now = time.monotonic()
        if now - self._primary_checked < redis_target.PRIMARY_CHECK_INTERVAL:
            return False
        self._primary_checked = now
        return True

    def _run(self, command: Callable[[], T]) -> T:
        """Run a sync client call, waiting out a failover; raise ``PublishError`` on failure."""
        try:
            if self._primary_check_due():
                redis_target.follow_primary(self.client)
            return redis_target.call_with_failover_wait(self.target, command)
        except redis_target.client_errors() as exc:
            raise self._error(exc) from exc

    async def _arun(self, command: Callable[[], Awaitable[T]]) -> T:
        """Like :meth:`_run`, for the asyncio client."""
        try:
            if self._primary_check_due():
                await redis_target.afollow_primary(self._async_client()[0])
            return await redis_target.acall_with_failover_wait(self.target, command)
        except redis_target.client_errors() as exc:
            raise self._error(exc) from exc

    def publish(self, message: Message) -> None:
        """Publish ``message`` on each of its channels in one round trip (one script call)."""
        self.publish_many([message])

    def publish_many(self, messages: Iterable[Message]) -> None:
        """Publish several messages, in order, in one round trip per 256 messages."""
        self.append(list(messages))

    def append(self, messages: Sequence[Message]) -> Positions:
        """Publish ``messages`` and return the position each got on each of its channels.

        One script call per 256 messages (per hash slot on Redis Cluster), each waited out
        on its own through a failover (``failover_wait``): a call is tried again only when
        Redis provably did not run it, so no message gets two positions.
        """
        client = self.client
        script = self._append
        if script is None or script.registered_client is not client:
            # Registering computes the SHA; redis-py loads the script again after a NOSCRIPT.
            script = self._append = client.register_script(redis_wire.LUA_APPEND)
        positions: Positions = []
        for start in range(0, len(messages), MESSAGES_PER_CALL):
            chunk = messages[start : start + MESSAGES_PER_CALL]
            found: Positions = [{} for _ in chunk]
            for indexes, channels in self._calls(chunk):
                part = [chunk[index] for index in indexes]
                keys, args = self._arguments(part, channels)
                try:
                    result = self._run(functools.partial(script, keys=keys, args=args))
                except PublishError as exc:
                    self._count_unpublished(exc, len(messages) - start)
                    raise
                answered = redis_wire.append_result(part, result, channels)
                for index, got in zip(indexes, answered, strict=True):
                    found[index].update(got)
            positions.extend(found)
        return positions

    async def apublish(self, message: Message) -> None:
        """Publish ``message`` with redis-py's asyncio client (no thread)."""
        await self.aappend([message])

    async def apublish_many(self, messages: Iterable[Message]) -> None:
        """Publish several messages, in order, without blocking the loop."""
        await self.aappend(list(messages))

    async def aappend(self, messages: Sequence[Message]) -> Positions:
        """Like :meth:`append`, with the asyncio client of the running loop.

        On Redis Cluster the calls of one chunk (one per hash slot) run concurrently.
        """
        _client, script = self._async_client()
        positions: Positions = []
        for start in range(0, len(messages), MESSAGES_PER_CALL):
            chunk = messages[start : start + MESSAGES_PER_CALL]
            found: Positions = [{} for _ in chunk]
            calls = []
            for indexes, channels in self._calls(chunk):
                part = [chunk[index] for index in indexes]
                keys, args = self._arguments(part, channels)
                calls.append((indexes, part, channels, keys, args))
            results = await asyncio.gather(
                *(
                    self._arun(functools.partial(script, keys=keys, args=args))
                    for _i, _p, _c, keys, args in calls
                ),
                return_exceptions=True,
            )
            for (indexes, part, channels, _k, _a), result in zip(calls, results, strict=True):
                if isinstance(result, PublishError):
                    self._count_unpublished(result, len(messages) - start)
                if isinstance(result, BaseException):
                    raise result
                answered = redis_wire.append_result(part, result, channels)
                for index, got in zip(indexes, answered, strict=True):
                    found[index].update(got)
            positions.extend(found)
        return positions

    def _calls(
        self, messages: Sequence[Message]
    ) -> list[tuple[list[int], list[tuple[str, ...]] | None]]:
        """Return the script calls for ``messages``: (message indexes, channels of each).

        One call with every channel on one Redis; on Redis Cluster one per hash slot, since
        a script may only touch keys of one slot (``None``: all of each message's channels).
        """
        if not self.cluster:
            return [(list(range(len(messages))), None)]
        return [
            (indexes, channels)
            for indexes, channels in redis_wire.group_by_slot(messages, self.prefix)
        ]

    def _arguments(
        self, messages: Sequence[Message], channels: Sequence[Sequence[str]] | None = None
    ) -> tuple[list[bytes], list[bytes]]:
        history = self.history
        return redis_wire.append_arguments(
            messages,
            self.prefix,
            epoch=new_epoch(),
            size=history.size if history.enabled else 0,
            ttl=history.ttl,
            channels=channels,
            sharded=self.cluster,
        )

    def _count_unpublished(self, error: PublishError, count: int) -> None:
        # Counted and logged here, whatever the caller does with the error: a message that
        # never reached Redis has no position, and nobody downstream can notice it is missing.
        self.unpublished += count
        logger.warning(
            "rtbridge: %d message(s) not published (%d so far): %s", count, self.unpublished, error
        )

    def revoke(self, user_id: str, channel: str) -> None:
        """End ``user_id``'s subscriptions to ``channel`` on every node; refuse older tokens.

        One round trip: ``SET <prefix>revoked:{<channel>}|<user id> <now>`` with the token
        lifetime as expiry (nodes refuse tokens issued up to that second), and a ``revoke``
        event on the channel's own pub/sub channel that makes every node with subscribers
        there end them (both in the channel's Redis Cluster slot).
        """
        now = time.time()

        def send() -> None:
            pipe = self.client.pipeline(transaction=True)
            pipe.set(
                redis_wire.revocation_key(self.prefix, user_id, channel),
                repr(now),
                # Kept as long as a token issued before it could still be presented.
                ex=conf.token_ttl(),
            )
            getattr(pipe, self._publish_command)(
                redis_wire.channel_key(self.prefix, channel),
                redis_wire.encode_revocation(user_id, channel, now),
            )
            pipe.execute()

        self._run(send)

    def open(self) -> None:
        """Connect now (publish connects lazily otherwise); raise ``PublishError`` if down."""
        import_sdk("redis", "redis", backend=self.alias)
        self._run(lambda: self.client.ping())

    def close(self) -> None:
        """Disconnect the pool; the next publish reconnects."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        # Async clients are closed by aclose() from their own loop; drop them here.
        self._async_clients = weakref.WeakKeyDictionary()

    async def aclose(self) -> None:
        """Close the asyncio client of the running loop."""
        loop = asyncio.get_running_loop()
        client = self._async_clients.pop(loop, None)
        if client is not None:
            await client[0].aclose()

    def client_config(self) -> dict[str, Any]:
        """Return ``{"backend": "redis", "url": public_url or None, "path": ws path}``."""
        return client_config_for(self.alias)

    def __repr__(self) -> str:
        return f"<RedisBackend {self.target.describe()} prefix={self.prefix!r}>"
