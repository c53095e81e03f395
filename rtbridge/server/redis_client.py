"""The asyncio Redis client of a server node: no silent retries, TCP keepalive."""

from __future__ import annotations

from typing import Any

__all__ = ["open_client"]


def open_client(url: str, socket_connect_timeout: float) -> Any:
    """Return a ``redis.asyncio.Redis`` for ``url`` (connects on first use).

    redis-py does not retry by itself here: a lost connection must reach the broker's reader,
    which resubscribes and sends gap frames, and presence's refresh, which adds entries again.
    """
    # Imported here: redis-py is an optional dependency, needed only by Redis-fed nodes.
    import redis.asyncio
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return redis.asyncio.Redis.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=socket_connect_timeout,
        socket_keepalive=True,
    )
