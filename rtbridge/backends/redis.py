"""``redis``: publish to Redis pub/sub, where rtbridge server nodes pick messages up."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .. import conf
from ..exceptions import ImproperlyConfigured, PublishError
from ..messages import Message
from .base import BaseBackend, import_sdk

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_URL",
    "RedisBackend",
    "control_channel",
    "decode_body",
    "encode_control",
    "encode_message",
    "revocation_key",
    "safe_url",
]

DEFAULT_URL = "redis://127.0.0.1:6379/0"
DEFAULT_PREFIX = "rtbridge:"
#: First line of every message body; a server drops bodies with another version.
BODY_VERSION = b"rtb1"
#: First line of a control body (presence events, revocations) on ``<prefix>!node``.
CONTROL_VERSION = b"rtc1"


def control_channel(prefix: str) -> str:
    """Return the Redis channel of node control events: ``<prefix>!node``.

    ``!`` is outside the logical channel alphabet, so no client channel can have this name.
    """
    return f"{prefix}!node"


def encode_control(event: dict[str, Any]) -> bytes:
    """Return the body of a control event: ``rtc1\n<compact JSON>``."""
    return CONTROL_VERSION + b"\n" + json.dumps(event, separators=(",", ":")).encode("utf-8")


def revocation_key(prefix: str, user_id: str, channel: str) -> str:
    """Return the Redis key holding when ``user_id`` lost access to ``channel``."""
    return f"{prefix}revoked:{channel}|{user_id}"


def encode_message(message: Message, prefix: str) -> list[tuple[bytes, bytes]]:
    """Return the ``(redis channel, body)`` pairs that carry ``message``: one per channel.

    The body is ``rtb1\\n<event>\\n<exclude or empty>\\n<payload>`` in UTF-8, where the
    payload is ``message.payload`` unchanged (docs/server.md, "Redis message format"). Event
    names and socket ids never contain a newline, so a reader splits on the first three.
    """
    body = b"\n".join(
        (
            BODY_VERSION,
            message.event.encode("ascii"),
            (message.exclude or "").encode("ascii"),
            message.payload.encode("utf-8"),
        )
    )
    return [((prefix + channel).encode("utf-8"), body) for channel in message.channels]


def decode_body(body: bytes) -> tuple[str, str | None, bytes]:
    """Return ``(event, exclude, payload)`` from a body made by :func:`encode_message`.

    Raises ``ValueError`` for a body in another format.
    """
    parts = body.split(b"\n", 3)
    if len(parts) != 4 or parts[0] != BODY_VERSION:
        raise ValueError(f"not an rtbridge message body: {body[:40]!r}")
    event = parts[1].decode("ascii")
    exclude = parts[2].decode("ascii") or None
    return event, exclude, parts[3]


def safe_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for error messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        return "<unparsable Redis URL>"


def client_config_for(alias: str) -> dict[str, Any]:
    """Return the JS client's config for the self-hosted server: backend, url and path."""
    server = conf.server_settings()
    return {"backend": alias, "url": server["public_url"], "path": server["path"]}


class RedisBackend(BaseBackend):
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
        url: str = DEFAULT_URL,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 5.0,
        socket_connect_timeout: float = 2.0,
        max_connections: int = 50,
        connection_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ImproperlyConfigured(
                f"RedisBackend url={url!r} is not a Redis URL; give e.g. {DEFAULT_URL!r}."
            )
        if not isinstance(prefix, str):
            raise ImproperlyConfigured(
                f"RedisBackend prefix={prefix!r} is not a string; give e.g. {DEFAULT_PREFIX!r}."
            )
        self.url = url
        self.prefix = prefix
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
            f"Redis at {safe_url(self.url)} did not take the message: {exc}"
            + (" (is redis-server running and reachable?)" if retryable else ""),
            retryable=retryable,
        )

    def publish(self, message: Message) -> None:
        """Publish ``message`` on each of its channels in one round trip (a pipeline)."""
        self.publish_many([message])

    def publish_many(self, messages: Iterable[Message]) -> None:
        """Publish several messages, in order, in one round trip."""
        pairs = [pair for message in messages for pair in encode_message(message, self.prefix)]
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
        pairs = [pair for message in messages for pair in encode_message(message, self.prefix)]
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

        from ..auth import DEFAULT_TOKEN_TTL

        now = time.time()
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.set(revocation_key(self.prefix, user_id, channel), repr(now), ex=DEFAULT_TOKEN_TTL)
            pipe.publish(
                control_channel(self.prefix),
                encode_control({"t": "revoke", "u": user_id, "c": channel, "at": now}),
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
        return f"<RedisBackend url={safe_url(self.url)!r} prefix={self.prefix!r}>"
