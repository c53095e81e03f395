"""``redis``: publish to Redis pub/sub, where rtbridge server nodes pick messages up."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import warnings
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

from .. import conf, redis_wire
from ..exceptions import PublishError
from ..history import Positions, new_epoch
from ..messages import Message
from .base import BaseBackend, SelfHostedAuthMixin, import_sdk

__all__ = ["RedisBackend", "client_config_for"]

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

    Options (``RTBRIDGE_OPTIONS``): ``url`` (``redis://[:password@]host:port/db``, also
    ``rediss://`` and ``unix://``), ``prefix`` of the Redis keys and channel names (default
    ``"rtbridge:"``; server nodes must use the same), ``socket_timeout`` and
    ``socket_connect_timeout`` in seconds, ``max_connections`` of the pool,
    ``connection_options`` (more keyword arguments of redis-py's ``ConnectionPool``), and
    ``fail_silently``.

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
        url: str = redis_wire.DEFAULT_URL,
        prefix: str = redis_wire.DEFAULT_PREFIX,
        socket_timeout: float = 5.0,
        socket_connect_timeout: float = 2.0,
        max_connections: int = 50,
        connection_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.url = redis_wire.check_url(url, "RedisBackend url")
        self.prefix = redis_wire.check_prefix(prefix, "RedisBackend prefix")
        self.socket_timeout = socket_timeout
        self.socket_connect_timeout = socket_connect_timeout
        self.max_connections = max_connections
        self.connection_options = dict(connection_options or {})
        self.history = conf.history()
        #: Messages Redis did not take (every failure is also logged).
        self.unpublished = 0
        self._client: Any = None
        self._append: Any = None
        self._lock = threading.Lock()
        # redis.asyncio clients belong to one event loop each.
        # Each with its registered append script.
        self._async_clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[Any, Any]
        ] = weakref.WeakKeyDictionary()

    def _pool_kwargs(self) -> dict[str, Any]:
        return {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_connect_timeout,
            "max_connections": self.max_connections,
            **self.connection_options,
        }

    @property
    def client(self) -> Any:
        """Return the pooled sync ``redis.Redis`` client, created on first use."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    redis = import_sdk("redis", "redis", backend=self.alias)
                    pool = redis.ConnectionPool.from_url(self.url, **self._pool_kwargs())
                    self._client = redis.Redis(connection_pool=pool)
        return self._client

    def _async_client(self) -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            import_sdk("redis", "redis", backend=self.alias)
            import redis.asyncio

            pool = redis.asyncio.ConnectionPool.from_url(self.url, **self._pool_kwargs())
            redis_client = redis.asyncio.Redis(connection_pool=pool)
            client = (redis_client, redis_client.register_script(redis_wire.LUA_APPEND))
            self._async_clients[loop] = client
        return client

    def _error(self, exc: Exception) -> PublishError:
        import redis.exceptions

        retryable = isinstance(
            exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
        )
        return PublishError(
            f"Redis at {redis_wire.safe_url(self.url)} did not take the message: {exc}"
            + (" (is redis-server running and reachable?)" if retryable else ""),
            retryable=retryable,
        )

    def publish(self, message: Message) -> None:
        """Publish ``message`` on each of its channels in one round trip (one script call)."""
        self.publish_many([message])

    def publish_many(self, messages: Iterable[Message]) -> None:
        """Publish several messages, in order, in one round trip per 256 messages."""
        self.append(list(messages))

    def append(self, messages: Sequence[Message]) -> Positions:
        """Publish ``messages`` and return the position each got on each of its channels."""
        client = self.client
        import redis.exceptions

        script = self._append
        if script is None or script.registered_client is not client:
            # Registering computes the SHA; redis-py loads the script again after a NOSCRIPT.
            script = self._append = client.register_script(redis_wire.LUA_APPEND)
        positions: Positions = []
        for start in range(0, len(messages), MESSAGES_PER_CALL):
            chunk = messages[start : start + MESSAGES_PER_CALL]
            keys, args = self._arguments(chunk)
            try:
                result = script(keys=keys, args=args)
            except (redis.exceptions.RedisError, OSError) as exc:
                raise self._failed(exc, len(messages) - start) from exc
            positions.extend(redis_wire.append_result(chunk, result))
        return positions

    async def apublish(self, message: Message) -> None:
        """Publish ``message`` with redis-py's asyncio client (no thread)."""
        await self.aappend([message])

    async def apublish_many(self, messages: Iterable[Message]) -> None:
        """Publish several messages, in order, without blocking the loop."""
        await self.aappend(list(messages))

    async def aappend(self, messages: Sequence[Message]) -> Positions:
        """Like :meth:`append`, with the asyncio client of the running loop."""
        _client, script = self._async_client()
        import redis.exceptions

        positions: Positions = []
        for start in range(0, len(messages), MESSAGES_PER_CALL):
            chunk = messages[start : start + MESSAGES_PER_CALL]
            keys, args = self._arguments(chunk)
            try:
                result = await script(keys=keys, args=args)
            except (redis.exceptions.RedisError, OSError) as exc:
                raise self._failed(exc, len(messages) - start) from exc
            positions.extend(redis_wire.append_result(chunk, result))
        return positions

    def _arguments(self, messages: Sequence[Message]) -> tuple[list[bytes], list[bytes]]:
        history = self.history
        return redis_wire.append_arguments(
            messages,
            self.prefix,
            epoch=new_epoch(),
            size=history.size if history.enabled else 0,
            ttl=history.ttl,
        )

    def _failed(self, exc: Exception, count: int) -> PublishError:
        # Counted and logged here, whatever the caller does with the error: a message that
        # never reached Redis has no position, and nobody downstream can notice it is missing.
        error = self._error(exc)
        self.unpublished += count
        logger.warning(
            "rtbridge: %d message(s) not published (%d so far): %s", count, self.unpublished, error
        )
        return error

    def revoke(self, user_id: str, channel: str) -> None:
        """End ``user_id``'s subscriptions to ``channel`` on every node; refuse older tokens.

        One round trip: ``SET <prefix>revoked:<channel>|<user id> <now>`` with the token
        lifetime as expiry (nodes refuse tokens issued up to that second), and a ``revoke``
        event on ``<prefix>!node`` that makes every node end the live subscriptions.
        """
        import redis.exceptions

        now = time.time()
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.set(
                redis_wire.revocation_key(self.prefix, user_id, channel),
                repr(now),
                # Kept as long as a token issued before it could still be presented.
                ex=conf.token_ttl(),
            )
            pipe.publish(
                redis_wire.control_channel(self.prefix),
                redis_wire.encode_revocation(user_id, channel, now),
            )
            pipe.execute()
        except (redis.exceptions.RedisError, OSError) as exc:
            raise self._error(exc) from exc

    def open(self) -> None:
        """Connect now (publish connects lazily otherwise); raise ``PublishError`` if down."""
        import_sdk("redis", "redis", backend=self.alias)
        import redis.exceptions

        try:
            self.client.ping()
        except (redis.exceptions.RedisError, OSError) as exc:
            raise self._error(exc) from exc

    def close(self) -> None:
        """Disconnect the pool; the next publish reconnects."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.connection_pool.disconnect()
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
        return f"<RedisBackend url={redis_wire.safe_url(self.url)!r} prefix={self.prefix!r}>"
