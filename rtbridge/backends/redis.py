"""``redis``: publish to Redis pub/sub, where rtbridge server nodes pick messages up."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
import weakref
from collections.abc import Iterable
from typing import Any

from .. import conf, redis_wire
from ..exceptions import PublishError
from ..messages import Message
from .base import BaseBackend, SelfHostedAuthMixin, import_sdk

__all__ = ["RedisBackend", "client_config_for"]

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
    """Publish with Redis ``PUBLISH``; every rtbridge server node subscribed to a channel gets it.

    Options (``RTBRIDGE_OPTIONS``): ``url`` (``redis://[:password@]host:port/db``, also
    ``rediss://`` and ``unix://``), ``prefix`` of the Redis channel names (default
    ``"rtbridge:"``; server nodes must use the same), ``socket_timeout`` and
    ``socket_connect_timeout`` in seconds, ``max_connections`` of the pool,
    ``connection_options`` (more keyword arguments of redis-py's ``ConnectionPool``), and
    ``fail_silently``.
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
        self._client: Any = None
        self._lock = threading.Lock()
        # redis.asyncio clients belong to one event loop each.
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

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

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            import_sdk("redis", "redis", backend=self.alias)
            import redis.asyncio

            pool = redis.asyncio.ConnectionPool.from_url(self.url, **self._pool_kwargs())
            client = self._async_clients[loop] = redis.asyncio.Redis(connection_pool=pool)
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
        """Publish ``message`` on each of its channels in one round trip (a pipeline)."""
        self.publish_many([message])

    def publish_many(self, messages: Iterable[Message]) -> None:
        """Publish several messages, in order, in one round trip."""
        pairs = [
            pair for message in messages for pair in redis_wire.encode_message(message, self.prefix)
        ]
        if not pairs:
            return
        import redis.exceptions

        try:
            if len(pairs) == 1:
                self.client.publish(*pairs[0])
                return
            pipe = self.client.pipeline(transaction=False)
            for channel, body in pairs:
                pipe.publish(channel, body)
            pipe.execute()
        except (redis.exceptions.RedisError, OSError) as exc:
            raise self._error(exc) from exc

    async def apublish(self, message: Message) -> None:
        """Publish ``message`` with redis-py's asyncio client (no thread)."""
        await self.apublish_many([message])

    async def apublish_many(self, messages: Iterable[Message]) -> None:
        """Publish several messages, in order, in one round trip, without blocking the loop."""
        pairs = [
            pair for message in messages for pair in redis_wire.encode_message(message, self.prefix)
        ]
        if not pairs:
            return
        client = self._async_client()
        import redis.exceptions

        try:
            pipe = client.pipeline(transaction=False)
            for channel, body in pairs:
                pipe.publish(channel, body)
            await pipe.execute()
        except (redis.exceptions.RedisError, OSError) as exc:
            raise self._error(exc) from exc

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
            await client.aclose()

    def client_config(self) -> dict[str, Any]:
        """Return ``{"backend": "redis", "url": public_url or None, "path": ws path}``."""
        return client_config_for(self.alias)

    def __repr__(self) -> str:
        return f"<RedisBackend url={redis_wire.safe_url(self.url)!r} prefix={self.prefix!r}>"
