"""The ``"redis"`` history store: positions and history in Redis, one script call per channel."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import Any

from . import conf, redis_target
from .exceptions import ImproperlyConfigured, PublishError
from .history import HistoryStore, Position, Positions, Replay, new_epoch, replay_from
from .messages import Message
from .redis_wire import LUA_APPEND, LUA_READ, append_arguments, read_arguments, read_result

__all__ = ["RedisHistoryStore"]


def _redis() -> Any:
    try:
        return importlib.import_module("redis")
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"RTBRIDGE_HISTORY['store']='redis' needs the 'redis' package ({exc}). Install it "
            "with: pip install 'rtbridge[redis]', or use the 'database' store."
        ) from exc


class RedisHistoryStore(HistoryStore):
    """Keep positions and history in Redis (``RTBRIDGE_REDIS``), with the wire module's scripts.

    The scripts are the ``redis`` backend's (:data:`~rtbridge.redis_wire.LUA_APPEND` with its
    PUBLISH off, :data:`~rtbridge.redis_wire.LUA_READ`), so positions and history have one
    layout and one set of rules on every backend. Each script call is atomic for one channel
    (the counter, the capped stream and the expiry), so offsets are contiguous whatever the
    number of Django processes. On one Redis a batch is one round trip (a pipeline of one
    call per channel); with ``sentinel`` or ``cluster`` each channel's call waits out a
    failover on its own (``failover_wait``, :mod:`rtbridge.redis_target`). A Redis that
    restarts empty loses every position: the next publish starts a new epoch, and clients
    that resume answer ``recovered: false``.
    """

    alias = "redis"

    def __init__(self, settings: conf.HistorySettings) -> None:
        super().__init__(settings)
        options = conf.redis_settings()
        #: Where Redis is: ``url``, ``sentinel`` or ``cluster`` of ``RTBRIDGE_REDIS``.
        self.target: redis_target.RedisTarget = redis_target.from_options(options, "RTBRIDGE_REDIS")
        self.prefix: str = options["prefix"]
        self.socket_timeout: float = options["socket_timeout"]
        self.socket_connect_timeout: float = options["socket_connect_timeout"]
        self._client: Any = None
        self._scripts: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str | None:
        """Return the URL of one Redis, or ``None`` with Sentinel or Cluster."""
        return self.target.url if isinstance(self.target, redis_target.SingleRedis) else None

    @property
    def client(self) -> Any:
        """Return the pooled client (``redis.Redis`` or ``RedisCluster``), created on first use."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    _redis()
                    client = redis_target.sync_client(
                        self.target,
                        socket_timeout=self.socket_timeout,
                        socket_connect_timeout=self.socket_connect_timeout,
                    )
                    self._scripts = (
                        client.register_script(LUA_APPEND),
                        client.register_script(LUA_READ),
                    )
                    self._client = client
        return self._client

    def append(self, messages: Sequence[Message]) -> Positions:
        """Assign and keep positions for ``messages`` (one script call per channel)."""
        per_channel: dict[str, list[int]] = {}
        for index, message in enumerate(messages):
            for name in message.channels:
                per_channel.setdefault(name, []).append(index)
        if not per_channel:
            return []
        client = self.client
        assert self._scripts is not None
        append = self._scripts[0]
        calls = []
        for name, indexes in per_channel.items():
            chosen = [messages[index] for index in indexes]
            calls.append(
                append_arguments(
                    chosen,
                    self.prefix,
                    epoch=new_epoch(),
                    size=self.size,
                    ttl=self.ttl,
                    publish=False,
                    channels=[(name,)] * len(chosen),
                )
            )
        if isinstance(self.target, redis_target.SingleRedis):
            # One round trip for the batch (one Redis does not fail over: nothing to wait out).
            pipe = client.pipeline(transaction=False)
            for keys, args in calls:
                append(keys=keys, args=args, client=pipe)
            results = self._run(pipe.execute, "assign positions")
        else:
            # Sentinel and Cluster: one call per channel (one hash slot), each waited out on
            # its own through a failover, tried again only when Redis provably did not run it.
            results = [
                self._run(
                    lambda keys=keys, args=args: redis_target.call_with_failover_wait(
                        self.target, lambda: append(keys=keys, args=args)
                    ),
                    "assign positions",
                )
                for keys, args in calls
            ]
        positions: Positions = [{} for _ in messages]
        for (name, indexes), answer in zip(per_channel.items(), results, strict=True):
            for number, index in enumerate(indexes):
                offset, epoch = answer[2 * number], answer[2 * number + 1]
                positions[index][name] = Position(int(offset), epoch.decode("ascii"))
        return positions

    def replay(self, channel: str, since: Position | None) -> Replay:
        """Return what a client at ``since`` missed on ``channel`` (one script call)."""
        self.client  # noqa: B018  (loads the scripts)
        assert self._scripts is not None
        read = self._scripts[1]
        keys, args = read_arguments(
            self.prefix, channel, epoch=new_epoch(), ttl=self.ttl, since=since, limit=self.size
        )
        top, entries = read_result(self._run(lambda: read(keys=keys, args=args), "read history"))
        return replay_from(channel, top, since, lambda offset: entries)

    def _run(self, request: Any, what: str) -> Any:
        redis_exceptions = importlib.import_module("redis.exceptions")
        try:
            return request()
        except redis_target.client_errors() as exc:
            raise PublishError(
                f"The history store could not {what} in Redis ({self.target.describe()}): {exc}",
                retryable=isinstance(
                    exc,
                    (
                        redis_exceptions.ConnectionError,
                        redis_exceptions.TimeoutError,
                        redis_exceptions.ClusterError,
                        OSError,
                    ),
                ),
            ) from exc

    def close(self) -> None:
        """Close the connection pool (a later call opens a new one)."""
        with self._lock:
            client, self._client, self._scripts = self._client, None, None
        if client is not None:
            client.close()
