"""The app factory and ``Server``: run the rtbridge server on an event loop or in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Any

import tornado.httpserver
import tornado.httputil
import tornado.netutil
import tornado.web
import tornado.wsgi
from django.apps import apps
from django.conf import settings

from .. import conf
from ..conf import HistorySettings
from ..messages import Message
from ..redis_target import RedisTarget
from ..redis_wire import DEFAULT_PREFIX, DEFAULT_URL
from . import loops, registry
from .brokers import Broker, MemoryBroker
from .calls import CallRunner
from .cluster import redis_broker
from .config import OriginPolicy, ServerConfig
from .connection import Connection, Transport
from .flush import FlushQueue
from .handler import SocketHandler
from .health import HealthHandler, ReadyHandler
from .housekeeping import LoopLagProbe, Sweeper, log_summaries
from .hub import Hub
from .logs import HostileWarnings, event
from .metrics import MetricsHandler, NodeMetrics
from .presence import run_refresh
from .protocol import FEATURES, CloseCode, welcome_frame
from .proxies import TrustedProxies
from .redis_client import coerce_target
from .revocations import Revocations
from .stats import NodeStats
from .tasks import cancel_and_wait
from .wsgi import strict_headers

__all__ = ["DEFAULT_ADDRESS", "Server", "make_app"]

logger = logging.getLogger("rtbridge.server")

DEFAULT_ADDRESS = "127.0.0.1"


def make_app(
    server: Server,
    wsgi_app: Callable[..., Any] | None = None,
    executor: ThreadPoolExecutor | None = None,
) -> tornado.web.Application:
    """Return the Tornado application: the socket, the probes and metrics, then the WSGI app."""
    config = server.config
    routes: list[Any] = [(config.path, SocketHandler, {"server": server})]
    if config.health_path is not None:
        routes.append((config.health_path, HealthHandler))
    if config.ready_path is not None:
        routes.append((config.ready_path, ReadyHandler, {"source": server}))
    if server.metrics is not None and config.metrics_path is not None:
        routes.append((config.metrics_path, MetricsHandler, {"metrics": server.metrics}))
    if wsgi_app is not None:
        container = tornado.wsgi.WSGIContainer(strict_headers(wsgi_app), executor=executor)
        routes.append((r".*", tornado.web.FallbackHandler, {"fallback": container}))
    return tornado.web.Application(
        routes,
        # Frames well past the limit are refused from their header with close 1009 (see
        # transport.StrictProtocol) before they are buffered; the rest get a 4413 error frame.
        websocket_max_message_size=4 * config.max_frame_bytes,
        log_function=_log_request,
    )


def _log_request(handler: tornado.web.RequestHandler) -> None:
    # Django logs its own requests; socket events are logged by the handler at DEBUG.
    if handler.get_status() >= 500:
        logger.warning(
            "rtbridge: %s %s -> %d",
            handler.request.method,
            handler.request.uri,
            handler.get_status(),
        )


def available_features() -> tuple[str, ...]:
    """Return the optional ops this process can serve.

    Tokens need Django's settings (``SECRET_KEY``) and calls need the app registry, so a
    server embedded without a Django project offers none of them (and says so in welcome).
    """
    if not settings.configured:
        return ()
    return FEATURES if apps.ready else tuple(f for f in FEATURES if f != "call")


def _software() -> str:
    # From the installed distribution: the package root (rtbridge/__init__.py) imports the
    # publishing and policy layers, which the server must not depend on.
    try:
        return f"rtbridge/{metadata.version('rtbridge')}"
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "rtbridge"


def _make_broker(
    broker: Broker | str | None,
    redis_url: str | RedisTarget | None,
    prefix: str | None,
    config: ServerConfig,
    history: HistorySettings,
) -> Broker:
    if broker is None:
        broker = "redis" if redis_url else "memory"
    if broker == "redis":
        return redis_broker(
            coerce_target(redis_url or DEFAULT_URL, "redis_url"),
            DEFAULT_PREFIX if prefix is None else prefix,
            reconnect_max_delay=config.reconnect_max_delay,
            presence_ttl=config.presence_ttl,
            history=history,
        )
    if broker == "memory":
        return MemoryBroker(history=history)
    if not isinstance(broker, Broker):
        raise ValueError(f"broker={broker!r} is not valid; give 'memory', 'redis' or a Broker")
    return broker


class Server:
    """One rtbridge server node: sockets, a hub, a broker and presence.

    ``Server(address="127.0.0.1", port=0, broker=None, redis_url=None, prefix=None,
    options=None, allowed_origins=None, wsgi_app=None)``. ``broker`` is a
    ``Broker``, ``"memory"`` or ``"redis"``; ``redis_url`` (a URL, or a Sentinel or Cluster
    target from ``rtbridge.redis_target.from_options``) alone selects Redis. ``options``
    override keys of ``RTBRIDGE_SERVER``; ``allowed_origins`` (``"*"`` or a list of origins)
    replaces ``RTBRIDGE_ALLOWED_ORIGINS`` (``None``: from the settings). ``wsgi_app`` (e.g.
    Django's) serves every other path through a thread pool. ``history`` replaces
    ``RTBRIDGE_HISTORY`` (``conf.HistorySettings``; a ``Broker`` given whole keeps its own).

    Run it on the current event loop with ``await server.astart()`` / ``await server.astop()``,
    or in a background thread with ``server.start()`` / ``server.stop()``. ``port=0`` picks a
    free port; read ``server.port`` or ``server.url`` after starting.

    The server puts the node together: the broker and presence deliver to the hub (their
    ``BrokerEvents``), each connection gets the parts it talks to, and nothing reaches one
    part through another.
    """

    def __init__(
        self,
        *,
        address: str = DEFAULT_ADDRESS,
        port: int = 0,
        broker: Broker | str | None = None,
        redis_url: str | RedisTarget | None = None,
        prefix: str | None = None,
        options: Mapping[str, Any] | None = None,
        allowed_origins: str | Iterable[str] | None = None,
        wsgi_app: Callable[..., Any] | None = None,
        history: HistorySettings | None = None,
    ) -> None:
        self.config = ServerConfig.load(options)
        self.origins = (
            OriginPolicy.from_settings()
            if allowed_origins is None
            else OriginPolicy.from_settings(allowed_origins)
        )
        self.proxies = TrustedProxies(self.config.trusted_proxies)
        #: The node's budget of WARNING lines about hostile clients.
        self.hostile_warnings = HostileWarnings(logger)
        self.broker = _make_broker(
            broker, redis_url, prefix, self.config, history or conf.history()
        )
        self.node_id = secrets.token_hex(6)
        self.stats = NodeStats()
        self.revocations = Revocations(self.broker, keep_for=self.config.token_ttl)
        self.hub = Hub(self.broker, self.stats, self.revocations, self.config.max_connections)
        self.presence = self.broker.make_presence(self.hub, self.node_id)
        #: The node's Prometheus registry (``None`` with ``metrics_path=None``).
        self.metrics = NodeMetrics(self) if self.config.metrics_path is not None else None
        if self.metrics is not None:
            self.hub.latency = self.metrics.latency
        self.flushes = FlushQueue()
        self.sweeper = Sweeper(self.config, self.hub, self.revocations, self.stats)
        self.loop_lag = LoopLagProbe(self.stats)
        #: Runs router calls in threads while the server runs (if it offers calls).
        self.calls: CallRunner | None = None
        self.address = address
        self.port = port
        self.wsgi_app = wsgi_app
        self.software = _software()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: tornado.httpserver.HTTPServer | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._thread: threading.Thread | None = None
        #: Optional ops offered in the welcome frame (set when the server starts).
        self.features: tuple[str, ...] = FEATURES
        self.running = False
        #: Set once stopping began: /readyz answers 503 and new handshakes get HTTP 503.
        self.draining = False

    # Identity -----------------------------------------------------------------------------

    def next_socket_id(self) -> str:
        """Return a socket id unique across nodes: ``<node id>.<counter>``."""
        return f"{self.node_id}.{next(self._ids)}"

    @property
    def url(self) -> str:
        """Return the socket URL, e.g. ``ws://127.0.0.1:8000/rtbridge/ws``."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"ws://{host}:{self.port}{self.config.path}"

    @property
    def http_url(self) -> str:
        """Return the HTTP base URL, e.g. ``http://127.0.0.1:8000``."""
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    # Running on the current loop ----------------------------------------------------------

    async def astart(self) -> None:
        """Listen and connect the broker, on the running event loop."""
        if self.running:
            raise RuntimeError("this Server is already running")
        self.draining = False
        self._loop = asyncio.get_running_loop()
        sockets = tornado.netutil.bind_sockets(self.port, self.address)
        self.port = sockets[0].getsockname()[1]
        if self.wsgi_app is not None:
            self._executor = ThreadPoolExecutor(
                self.config.wsgi_threads, thread_name_prefix="rtbridge-wsgi"
            )
        app = make_app(self, self.wsgi_app, self._executor)
        self._http = tornado.httpserver.HTTPServer(app)
        self._http.add_sockets(sockets)
        self.features = available_features()
        if "call" in self.features:
            self.calls = CallRunner(self.config.call_threads)
        await self.broker.start(self.hub)
        try:
            await self.presence.start()
        except Exception as exc:  # retried by the presence refresh
            logger.warning("rtbridge: cannot announce this node's presence yet: %s", exc)
        self._tasks = [
            asyncio.create_task(self.sweeper.run(), name="rtbridge-sweep"),
            asyncio.create_task(
                self.hub.keep_positions(min(60.0, self.broker.history.ttl / 3)),
                name="rtbridge-positions",
            ),
        ]
        self.loop_lag.start()
        if self.presence.refresh_interval is not None:
            self._tasks.append(
                asyncio.create_task(run_refresh(self.presence), name="rtbridge-presence")
            )
        if self.config.stats_interval > 0:
            self._tasks.append(
                asyncio.create_task(
                    log_summaries(self.config.stats_interval, self._activity, self.summary),
                    name="rtbridge-stats",
                )
            )
        self.running = True
        registry.register(self)
        logger.info(
            "rtbridge: serving %s (broker: %s%s)",
            self.url,
            self.broker.describe(),
            ", with the WSGI app" if self.wsgi_app is not None else "",
            extra=event("node.started"),
        )

    async def astop(self, timeout: float = 3.0) -> None:
        """Close every socket with 1001, wait up to ``timeout`` for them, then stop."""
        if not self.running:
            return
        self.draining = True
        self.running = False
        registry.unregister(self)
        if self._http is not None:
            self._http.stop()
        self.hub.close_all(CloseCode.GOING_AWAY, "server shutting down")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.hub.wait_closed(), timeout)
        # Presence leaves of the closed sockets, so the others see them go at once.
        await self.presence.drain(timeout)
        self.loop_lag.stop()
        # Cancelled again while one goes on: on Python 3.11 a wait_for inside a task can
        # swallow the cancellation when its own wait ends at the same moment.
        await cancel_and_wait(self._tasks)
        self._tasks = []
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.presence.stop(), 2.0)
        await self.broker.stop()
        if self._http is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._http.close_all_connections(), 1.0)
            self._http = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self.calls is not None:
            self.calls.shutdown()
            self.calls = None
        logger.info(
            "rtbridge: stopped %s; %s", self.url, self.summary(), extra=event("node.stopped")
        )

    # Running in a background thread -------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Server:
        """Run the server on a new event loop in a daemon thread; return once it listens."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = loops.new_event_loop(self.config.event_loop)
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.astart())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=run, name="rtbridge-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"the rtbridge server did not start within {timeout}s")
        if failure:
            raise failure[0]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop a server started with :meth:`start` (sockets get close code 1001)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self.astop(), loop)
            future.result(timeout)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the server's loop; safe from any thread."""
        if self._loop is None:
            raise RuntimeError("the rtbridge server is not running")
        self._loop.call_soon_threadsafe(callback, *args)

    # Publishing ---------------------------------------------------------------------------

    def publish(self, message: Message) -> None:
        """Publish ``message`` through this node's broker; safe from any thread, never blocks.

        With the memory broker it gets its positions here and reaches this node's
        subscribers; with Redis it is published as ``RedisBackend`` does (to every node; a
        failure is logged).
        """
        self.call_soon(self.broker.publish, message, time.perf_counter())

    def revoke(self, user_id: str, channel: str, revoked_at: float | None = None) -> None:
        """End ``user_id``'s subscriptions to ``channel`` on this node; safe from any thread.

        This bypasses the broker: use ``rtbridge.revoke()`` (the backend) to reach every node.
        """
        self.call_soon(self.hub.revoke, user_id, channel, revoked_at or time.time())

    # Sockets (the handler's SocketHost) ----------------------------------------------------

    def unavailable(self) -> str | None:
        """Return why new sockets get HTTP 503 now (the node is draining), or ``None``."""
        return "this node is shutting down; connect to another" if self.draining else None

    def allows_host(self, host: str | None) -> bool:
        """Return whether the ``Host`` header passes ``ALLOWED_HOSTS`` (a refusal is counted)."""
        if self.origins.allows_host(host):
            return True
        self.stats.refused += 1
        return False

    def client_address(self, request: tornado.httputil.HTTPServerRequest) -> str:
        """Return the client's address: the peer's, or the one a trusted proxy forwarded."""
        return self.proxies.client_address(request.remote_ip or "", request.headers)

    def compression_options(self) -> dict[str, Any] | None:
        """Return Tornado's permessage-deflate options when ``compression`` is on."""
        return {} if self.config.compression else None

    def protocol_failed(self, remote: str, code: int, reason: str) -> None:
        """Count a connection failed for breaking RFC 6455, with a rate-limited WARNING."""
        self.stats.protocol_failures += 1
        self.hostile_warnings.warn(
            f"{remote} broke the WebSocket protocol: {reason}; closed {code}",
            code=code,
            socket_id=None,
            peer=remote,
        )

    def allows_origin(self, origin: str, host: str | None) -> bool:
        """Return whether a page at ``origin`` may open a socket (a refusal is counted)."""
        if self.origins.allows(origin, host):
            return True
        self.stats.refused += 1
        return False

    def trusts_origin(self, origin: str, host: str | None) -> bool:
        """Return whether a page at ``origin`` may act as the visitor (use the session)."""
        return self.origins.trusts(origin, host)

    def refusal(self) -> tuple[int, str] | None:
        """Return ``(close code, reason)`` if a new socket must be refused now (counted)."""
        if not self.hub.full:
            return None
        self.stats.refused += 1
        return (
            CloseCode.TOO_MANY_CONNECTIONS,
            f"this node has {self.config.max_connections} connections; try later",
        )

    def connect(self, transport: Transport, remote: str, session_key: str | None) -> Connection:
        """Return the connection of a new socket, registered with the hub and welcomed."""
        connection = Connection(
            transport,
            self.next_socket_id(),
            hub=self.hub,
            broker=self.broker,
            presence=self.presence,
            revocations=self.revocations,
            flushes=self.flushes,
            stats=self.stats,
            config=self.config,
            calls=self.calls,
            features=self.features,
            hostile_warnings=self.hostile_warnings,
            remote=remote,
            session_key=session_key,
        )
        self.hub.add(connection)
        self.sweeper.track(connection.socket_id)
        logger.debug(
            "rtbridge: opened %s from %s",
            connection.socket_id,
            remote,
            extra=event("socket.opened", socket_id=connection.socket_id, peer=remote),
        )
        connection.send(
            welcome_frame(connection.socket_id, self.config.heartbeat, self.software, self.features)
        )
        return connection

    # Readiness and metrics ----------------------------------------------------------------

    def readiness(self) -> str | None:
        """Return why this node should get no new sockets now, or ``None`` (ready)."""
        if self.draining or not self.running:
            return "draining: this node is shutting down"
        if not self.broker.connected:
            return f"the broker is not connected ({self.broker.describe()})"
        if self.hub.full:
            return f"max_connections ({self.config.max_connections}) reached"
        return None

    def gauges(self) -> dict[str, float]:
        """Return the node's gauges right now (read by the metrics at scrape time)."""
        return {
            "connections": len(self.hub.connections),
            "subscriptions": self.hub.subscription_count(),
            "channels": self.hub.channel_count(),
            "broker_connected": 1 if self.broker.connected else 0,
            "broker_reconnects": self.broker.reconnects,
            "broker_dropped": self.broker.dropped,
            "ready": 1 if self.readiness() is None else 0,
        }

    # Activity -----------------------------------------------------------------------------

    def _activity(self) -> tuple[int, ...]:
        # A summary is logged only when one of these changed since the last one.
        stats = self.stats
        return (len(self.hub.connections), stats.opened, stats.messages, stats.errors)

    def summary(self) -> str:
        """Return a one-line summary of the node's activity since it started."""
        return self.stats.summary(len(self.hub.connections), self.hub.channel_count())
