"""The asyncio Redis client of a server node: no silent retries, TCP keepalive."""

from __future__ import annotations

from typing import Any

from ..redis_target import RedisTarget, async_client, from_url

__all__ = ["coerce_target", "open_client", "stale_primary"]


def coerce_target(target: str | RedisTarget, source: str) -> RedisTarget:
    """Return ``target``, or one Redis at that URL when it is a string (``source`` names it)."""
    if isinstance(target, str):
        return from_url(target, source)
    return target


def open_client(target: RedisTarget, socket_connect_timeout: float) -> Any:
    """Return an asyncio client for ``target`` (connects on first use).

    redis-py does not retry by itself here: a lost connection must reach the broker's reader,
    which resubscribes and sends gap frames, and presence's refresh, which adds entries again.
    With Sentinel every new connection asks the sentinels for today's primary, so these
    reconnects follow a failover. No socket timeout: a pub/sub connection is idle between
    messages (the broker PINGs it), and commands have their own ``command_timeout``.
    """
    return async_client(target, socket_timeout=None, socket_connect_timeout=socket_connect_timeout)


async def stale_primary(client: Any, pubsub: Any) -> tuple[str, int] | None:
    """Return today's primary if ``pubsub`` (of ``client``) is connected elsewhere, else None.

    Only a Sentinel client can tell. Sentinel closes a demoted primary's normal clients but
    not its pub/sub clients, which then hear only what replication relays to them (nothing
    at all until it is reconfigured, or when that link is down): the broker asks this every
    ``PRIMARY_CHECK_INTERVAL`` and reconnects. ``None`` too when the sentinels cannot say right now.
    """
    import redis.asyncio.sentinel
    import redis.exceptions

    pool = getattr(client, "connection_pool", None)
    connection = getattr(pubsub, "connection", None)
    if not isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool) or connection is None:
        return None
    try:
        host, port = await pool.sentinel_manager.discover_master(pool.service_name)
    except redis.exceptions.ConnectionError:
        return None
    if (connection.host, int(connection.port)) == (host, int(port)):
        return None
    return host, int(port)
