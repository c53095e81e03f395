"""Where Redis is (one server, a Sentinel-watched primary, a Cluster) and redis-py clients for it.

One shape of options, read by the ``redis`` backend from ``RTBRIDGE_OPTIONS`` and by server
nodes from the same setting (docs/server.md, "One Redis, Sentinel or Cluster")::

    {"url": "redis://:password@10.0.0.5:6379/0"}                 # one Redis (the default)
    {"sentinel": {"sentinels": ["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"],
                  "service_name": "mymaster", "password": "...", "db": 0}}
    {"cluster": {"startup_nodes": ["10.0.0.1:7000", "10.0.0.2:7000"], "password": "..."}}

plus ``failover_wait`` (seconds, top level): how long a publish that Redis provably did not
run (no primary reachable, a demoted primary, a slot without a primary) is tried again
before it fails; see :func:`call_with_failover_wait`.

Every client is built here, on redis-py's own ``Redis``, ``Sentinel`` and ``RedisCluster``
(sync and ``redis.asyncio``), with redis-py's command retries off: a command that failed
after it was sent may have run, and running a publish twice would give one message two
positions. The callers decide what to try again. Imports redis-py only when a client is
made (it is an optional dependency).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .exceptions import ImproperlyConfigured
from .redis_wire import DEFAULT_URL, check_url, safe_url

__all__ = [
    "DEFAULT_FAILOVER_WAIT",
    "PRIMARY_CHECK_INTERVAL",
    "TARGET_OPTIONS",
    "ClusterRedis",
    "RedisTarget",
    "SentinelRedis",
    "SingleRedis",
    "acall_with_failover_wait",
    "afollow_primary",
    "async_client",
    "call_with_failover_wait",
    "client_errors",
    "follow_primary",
    "from_options",
    "from_url",
    "no_retry",
    "not_run",
    "sync_client",
]

logger = logging.getLogger("rtbridge.redis")

T = TypeVar("T")

#: The options this module reads from a backend's (or server's) option dict.
TARGET_OPTIONS = ("url", "sentinel", "cluster", "failover_wait")

#: Seconds a publish waits for a new primary by default: none for one Redis (it does not
#: fail over), 10 s for Sentinel and Cluster (a failover with Sentinel's
#: ``down-after-milliseconds`` of 5 s, or Cluster's ``cluster-node-timeout`` of 5 s, is over
#: well within that; raise it with longer timeouts).
DEFAULT_FAILOVER_WAIT = {"single": 0.0, "sentinel": 10.0, "cluster": 10.0}

_SENTINEL_KEYS = (
    "sentinels",
    "service_name",
    "db",
    "username",
    "password",
    "sentinel_username",
    "sentinel_password",
    "ssl",
)
_CLUSTER_KEYS = ("startup_nodes", "username", "password", "ssl")

Address = tuple[str, int]


@dataclass(frozen=True)
class SingleRedis:
    """One Redis server (or a proxy or managed endpoint that looks like one): a URL."""

    mode: ClassVar[str] = "single"
    url: str = DEFAULT_URL
    failover_wait: float = 0.0

    def describe(self) -> str:
        """Return the URL without its password (for logs and errors)."""
        return safe_url(self.url)


@dataclass(frozen=True)
class SentinelRedis:
    """The primary of ``service_name`` as the sentinels at ``sentinels`` name it now."""

    mode: ClassVar[str] = "sentinel"
    sentinels: tuple[Address, ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)
    ssl: bool = False
    failover_wait: float = DEFAULT_FAILOVER_WAIT["sentinel"]

    def describe(self) -> str:
        """Return ``sentinel <service> via host:port,... db N`` (no password)."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"sentinel {self.service_name!r} via {hosts} db {self.db}"


@dataclass(frozen=True)
class ClusterRedis:
    """A Redis Cluster, found from any of ``startup_nodes`` (redis-py learns the rest)."""

    mode: ClassVar[str] = "cluster"
    startup_nodes: tuple[Address, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    failover_wait: float = DEFAULT_FAILOVER_WAIT["cluster"]

    def describe(self) -> str:
        """Return ``cluster host:port,...`` (no password)."""
        return "cluster " + ",".join(f"{host}:{port}" for host, port in self.startup_nodes)


RedisTarget = SingleRedis | SentinelRedis | ClusterRedis


# Options ------------------------------------------------------------------------------------


def from_url(url: object, source: str) -> SingleRedis:
    """Return one Redis at ``url``; ``ImproperlyConfigured`` naming ``source`` if it is not one."""
    return SingleRedis(check_url(url, source))


def from_options(options: Mapping[str, Any], source: str) -> RedisTarget:
    """Return the target that ``url``, ``sentinel`` or ``cluster`` in ``options`` describes.

    ``source`` names the setting in errors (e.g. ``"RTBRIDGE_OPTIONS"``). Other keys of
    ``options`` are the caller's and left alone. Raises ``ImproperlyConfigured`` naming the
    bad key, the rule and the fix.
    """
    given = [key for key in ("url", "sentinel", "cluster") if options.get(key) is not None]
    if len(given) > 1:
        raise ImproperlyConfigured(
            f"{source} has {' and '.join(repr(k) for k in given)}; give one of 'url' (one "
            "Redis), 'sentinel' (a primary watched by Redis Sentinel) or 'cluster' (Redis "
            "Cluster)."
        )
    mode = given[0] if given else "url"
    wait = options.get("failover_wait")
    if wait is not None and (
        isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0
    ):
        raise ImproperlyConfigured(
            f"{source}['failover_wait']={wait!r} is not valid; give seconds >= 0 (how long a "
            "publish waits for a new primary), or leave it out for the default."
        )
    if mode == "url":
        url = options.get("url")
        url = check_url(DEFAULT_URL if url is None else url, f"{source}['url']")
        return SingleRedis(url, float(DEFAULT_FAILOVER_WAIT["single"] if wait is None else wait))
    if mode == "sentinel":
        spec = _mapping(options["sentinel"], f"{source}['sentinel']", _SENTINEL_KEYS)
        label = f"{source}['sentinel']"
        service = spec.get("service_name")
        if not isinstance(service, str) or not service:
            raise ImproperlyConfigured(
                f"{label}['service_name']={service!r} is not valid; give the name the "
                "sentinels monitor (the <master-name> of 'sentinel monitor' in sentinel.conf)."
            )
        db = spec.get("db", 0)
        if isinstance(db, bool) or not isinstance(db, int) or db < 0:
            raise ImproperlyConfigured(
                f"{label}['db']={db!r} is not valid; give a database number >= 0."
            )
        return SentinelRedis(
            sentinels=_addresses(spec.get("sentinels"), f"{label}['sentinels']", 26379),
            service_name=service,
            db=db,
            username=_optional_text(spec, "username", label),
            password=_optional_text(spec, "password", label),
            sentinel_username=_optional_text(spec, "sentinel_username", label),
            sentinel_password=_optional_text(spec, "sentinel_password", label),
            ssl=_flag(spec, "ssl", label),
            failover_wait=float(DEFAULT_FAILOVER_WAIT["sentinel"] if wait is None else wait),
        )
    label = f"{source}['cluster']"
    spec = _mapping(options["cluster"], label, _CLUSTER_KEYS)
    return ClusterRedis(
        startup_nodes=_addresses(spec.get("startup_nodes"), f"{label}['startup_nodes']", 6379),
        username=_optional_text(spec, "username", label),
        password=_optional_text(spec, "password", label),
        ssl=_flag(spec, "ssl", label),
        failover_wait=float(DEFAULT_FAILOVER_WAIT["cluster"] if wait is None else wait),
    )


def _mapping(value: object, label: str, allowed: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            f"{label} must be a dict with the keys {', '.join(allowed)}; got "
            f"{type(value).__name__}."
        )
    unknown = [key for key in value if key not in allowed]
    if unknown:
        hint = (
            " Redis Cluster has only database 0." if "db" in unknown and "db" not in allowed else ""
        )
        raise ImproperlyConfigured(
            f"{label} has unknown key {unknown[0]!r}; known keys: {', '.join(allowed)}.{hint}"
        )
    return value


def _addresses(value: object, label: str, default_port: int) -> tuple[Address, ...]:
    example = f"['10.0.0.1:{default_port}', '10.0.0.2:{default_port}']"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise ImproperlyConfigured(
            f"{label}={value!r} is not valid; give a non-empty list of 'host:port' strings "
            f"or (host, port) pairs, e.g. {example}."
        )
    addresses = []
    for entry in value:
        host: object
        port: object
        if isinstance(entry, str):
            host, _, port_text = entry.rpartition(":")
            port = int(port_text) if port_text.isdigit() else None
            if not host:
                host, port = port_text, default_port
        elif isinstance(entry, Sequence) and len(entry) == 2:
            host, port = entry
        else:
            host, port = None, None
        if (
            not isinstance(host, str)
            or not host
            or isinstance(port, bool)
            or not isinstance(port, int)
            or not 0 < port < 65536
        ):
            raise ImproperlyConfigured(
                f"{label} has {entry!r}, which is not an address; give 'host:port' or "
                f"(host, port), e.g. {example}."
            )
        addresses.append((host.strip("[]"), port))
    return tuple(addresses)


def _optional_text(spec: Mapping[str, Any], key: str, label: str) -> str | None:
    value = spec.get(key)
    if value is not None and not isinstance(value, str):
        raise ImproperlyConfigured(f"{label}[{key!r}] must be a string or None.")
    return value


def _flag(spec: Mapping[str, Any], key: str, label: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"{label}[{key!r}]={value!r} is not valid; give True or False.")
    return value


# Clients ------------------------------------------------------------------------------------


def no_retry(*, asyncio: bool) -> Any:
    """Return redis-py's "never retry" policy (its asyncio client has its own ``Retry``)."""
    from redis.backoff import NoBackoff

    if asyncio:
        from redis.asyncio.retry import Retry as AsyncRetry

        return AsyncRetry(NoBackoff(), 0)
    from redis.retry import Retry

    return Retry(NoBackoff(), 0)


def _common(
    socket_timeout: float | None, socket_connect_timeout: float | None, *, asyncio: bool
) -> dict[str, Any]:
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout,
        "socket_keepalive": True,
        "retry": no_retry(asyncio=asyncio),
    }


def _sentinel_kwargs(
    target: SentinelRedis, socket_timeout: float | None, socket_connect_timeout: float | None
) -> dict[str, Any]:
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout,
        "username": target.sentinel_username,
        "password": target.sentinel_password,
        "ssl": target.ssl,
    }


def sync_client(
    target: RedisTarget,
    *,
    socket_timeout: float | None = 5.0,
    socket_connect_timeout: float | None = 2.0,
    max_connections: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Return a pooled sync client for ``target`` (``redis.Redis`` or ``RedisCluster``).

    ``options`` are more keyword arguments of redis-py's pool (or cluster client). Connects
    on first use; ``close()`` closes its pool.
    """
    import redis
    import redis.cluster
    import redis.sentinel

    kwargs: dict[str, Any] = {
        **_common(socket_timeout, socket_connect_timeout, asyncio=False),
        **(options or {}),
    }
    if max_connections is not None:
        kwargs["max_connections"] = max_connections
    if isinstance(target, SingleRedis):
        return redis.Redis.from_url(target.url, **kwargs)
    if isinstance(target, SentinelRedis):
        sentinel = redis.sentinel.Sentinel(
            list(target.sentinels),
            sentinel_kwargs=_sentinel_kwargs(target, socket_timeout, socket_connect_timeout),
        )
        return sentinel.master_for(
            target.service_name,
            db=target.db,
            username=target.username,
            password=target.password,
            ssl=target.ssl,
            **kwargs,
        )
    return redis.cluster.RedisCluster(
        startup_nodes=[
            redis.cluster.ClusterNode(host, port) for host, port in target.startup_nodes
        ],
        username=target.username,
        password=target.password,
        ssl=target.ssl,
        **kwargs,
    )


def async_client(
    target: RedisTarget,
    *,
    socket_timeout: float | None = 5.0,
    socket_connect_timeout: float | None = 2.0,
    max_connections: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Return an asyncio client for ``target`` (``redis.asyncio.Redis`` or ``RedisCluster``).

    It belongs to the running event loop: make one per loop.
    """
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.asyncio.sentinel

    kwargs: dict[str, Any] = {
        **_common(socket_timeout, socket_connect_timeout, asyncio=True),
        **(options or {}),
    }
    if max_connections is not None:
        kwargs["max_connections"] = max_connections
    if isinstance(target, SingleRedis):
        return redis.asyncio.Redis.from_url(target.url, **kwargs)
    if isinstance(target, SentinelRedis):
        sentinel = redis.asyncio.sentinel.Sentinel(
            list(target.sentinels),
            sentinel_kwargs=_sentinel_kwargs(target, socket_timeout, socket_connect_timeout),
        )
        return sentinel.master_for(
            target.service_name,
            db=target.db,
            username=target.username,
            password=target.password,
            ssl=target.ssl,
            **kwargs,
        )
    return redis.asyncio.cluster.RedisCluster(
        startup_nodes=[
            redis.asyncio.cluster.ClusterNode(host, port) for host, port in target.startup_nodes
        ],
        username=target.username,
        password=target.password,
        ssl=target.ssl,
        **kwargs,
    )


# Failover -----------------------------------------------------------------------------------

#: Seconds between two checks of which primary the sentinels name, by a publisher (before a
#: publish) and by a server node's pub/sub. After a failover that left the old primary
#: running, Sentinel reconfigures it and closes its normal clients only when it next looks
#: at it (seconds later), and never its pub/sub clients; until then it takes writes that are
#: lost when it becomes a replica.
PRIMARY_CHECK_INTERVAL = 1.0


def follow_primary(client: Any) -> None:
    """Ask the sentinels for the primary; if it moved, drop ``client``'s idle connections.

    A no-op for clients of one Redis or a Cluster, and when the sentinels cannot say right
    now (the publish that follows then fails, or waits, on its own). In-use connections to
    the old primary are not handed out again (redis-py's Sentinel pool checks on release).
    """
    import redis.exceptions
    import redis.sentinel

    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, redis.sentinel.SentinelConnectionPool):
        # No primary known right now: the publish that follows reports it.
        with contextlib.suppress(redis.exceptions.ConnectionError):
            pool.get_master_address()


async def afollow_primary(client: Any) -> None:
    """Like :func:`follow_primary`, for a ``redis.asyncio`` client."""
    import redis.asyncio.sentinel
    import redis.exceptions

    pool = getattr(client, "connection_pool", None)
    if isinstance(pool, redis.asyncio.sentinel.SentinelConnectionPool):
        with contextlib.suppress(redis.exceptions.ConnectionError):
            await pool.get_master_address()


def client_errors() -> tuple[type[BaseException], ...]:
    """Return what a redis-py call can raise for a Redis-side failure (to catch and report).

    ``RedisClusterException`` (no reachable node, a slot not covered) is not a
    ``RedisError``, hence this tuple.
    """
    import redis.exceptions

    return (redis.exceptions.RedisError, redis.exceptions.RedisClusterException, OSError)


def not_run(exc: BaseException) -> bool:
    """Return whether ``exc`` proves that Redis did not run the command (safe to send again).

    True for: a connection that could not be opened (nothing was sent), the sentinels naming
    no primary, a primary that has become a replica (``READONLY``: the first write of a
    script fails, so nothing was written), a node still loading its data, a cluster slot
    without a primary (``CLUSTERDOWN``/``MASTERDOWN``) or being moved (``TRYAGAIN``), and
    a Cluster none of whose known nodes answers. False for anything that may have happened
    after the command reached Redis (a connection lost while waiting for the answer).
    """
    import redis.asyncio.sentinel
    import redis.exceptions
    import redis.sentinel

    errors = redis.exceptions
    if isinstance(exc, (errors.AuthenticationError, errors.MaxConnectionsError)):
        return False  # permanent (or load): waiting does not help
    if isinstance(
        exc,
        (
            redis.sentinel.MasterNotFoundError,
            redis.asyncio.sentinel.MasterNotFoundError,
            errors.ReadOnlyError,
            errors.BusyLoadingError,
            errors.ClusterDownError,
            errors.TryAgainError,
        ),
    ):
        return True
    if isinstance(exc, errors.ConnectionError) and isinstance(
        exc.__context__, errors.ReadOnlyError
    ):
        return True  # redis-py's Sentinel pool turns READONLY into "the master is now a slave"
    if isinstance(exc, (errors.ConnectionError, errors.TimeoutError)):
        # redis-py words connection failures so ("Error 111 connecting to host:port.",
        # "Timeout connecting to server"); tests/test_redis_target.py guards the wording.
        return "connecting to" in str(exc)
    if isinstance(exc, errors.RedisClusterException):
        return "cannot be connected" in str(exc)
    return False


def _delays(wait: float) -> Iterator[float]:
    deadline = time.monotonic() + wait
    delay = 0.05
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        yield min(delay, remaining)
        delay = min(delay * 2, 0.5)


def _log_wait(target: RedisTarget, exc: BaseException) -> None:
    logger.warning(
        "rtbridge: Redis (%s) did not run a command (%s: %s); trying again for up to %gs "
        "(failover_wait)",
        target.describe(),
        type(exc).__name__,
        exc,
        target.failover_wait,
    )


def call_with_failover_wait(target: RedisTarget, command: Callable[[], T]) -> T:
    """Run ``command()``; while it fails with an error that proves it did not run, try again.

    Tries again for up to ``target.failover_wait`` seconds (backoff 50 ms to 0.5 s), then
    raises the last error. Any other error is raised at once: the command may have run.
    """
    delays = None
    while True:
        try:
            return command()
        except client_errors() as exc:
            if not not_run(exc):
                raise
            if delays is None:
                delays = _delays(target.failover_wait)
                if target.failover_wait > 0:
                    _log_wait(target, exc)
            delay = next(delays, None)
            if delay is None:
                raise
            time.sleep(delay)


async def acall_with_failover_wait(target: RedisTarget, command: Callable[[], Awaitable[T]]) -> T:
    """Like :func:`call_with_failover_wait`, for a coroutine function, without blocking."""
    delays = None
    while True:
        try:
            return await command()
        except client_errors() as exc:
            if not not_run(exc):
                raise
            if delays is None:
                delays = _delays(target.failover_wait)
                if target.failover_wait > 0:
                    _log_wait(target, exc)
            delay = next(delays, None)
            if delay is None:
                raise
            await asyncio.sleep(delay)
