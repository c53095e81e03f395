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
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.wsgi

from ..backends.redis import DEFAULT_PREFIX, DEFAULT_URL
from ..messages import Message
from . import registry
from .brokers import Broker, MemoryBroker, RedisBroker
from .calls import CallRunner
from .config import OriginPolicy, ServerConfig
from .handler import SocketHandler
from .hub import Hub
from .presence import RedisPresence, run_refresh
from .protocol import FEATURES, CloseCode
from .wsgi import strict_headers

__all__ = ["Server", "make_app"]

logger = logging.getLogger("rtbridge.server")


def make_app(
    server: Server,
    wsgi_app: Callable[..., Any] | None = None,
    executor: ThreadPoolExecutor | None = None,
) -> tornado.web.Application:
    """Return the Tornado application: the socket at ``config.path``, then the WSGI app if any."""
    config = server.config
    routes: list[Any] = [(config.path, SocketHandler, {"server": server})]
    if wsgi_app is not None:
        container = tornado.wsgi.WSGIContainer(strict_headers(wsgi_app), executor=executor)
        routes.append((r".*", tornado.web.FallbackHandler, {"fallback": container}))
    return tornado.web.Application(
        routes,
        # Frames well past the limit are cut off by Tornado (1009) before they are buffered
        # whole; the rest get a 4413 error frame from the protocol.
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
    from django.apps import apps
    from django.conf import settings

    if not settings.configured:
        return ()
    return FEATURES if apps.ready else tuple(f for f in FEATURES if f != "call")


class Server:
    """One rtbridge server node: sockets, a hub and a broker.

    ``Server(address="127.0.0.1", port=0, broker=None, redis_url=None, prefix=None,
    options=None, allowed_origins=None, wsgi_app=None)``. ``broker`` is a
    ``Broker``, ``"memory"`` or ``"redis"``; ``redis_url`` alone selects Redis. ``options``
    override keys of ``RTBRIDGE_SERVER``; ``allowed_origins`` (``"*"`` or a list of origins)
    replaces ``RTBRIDGE_ALLOWED_ORIGINS`` (``None``: from the settings). ``wsgi_app`` (e.g.
    Django's) serves every other path through a thread pool.

    Run it on the current event loop with ``await server.astart()`` / ``await server.astop()``,
    or in a background thread with ``server.start()`` / ``server.stop()``. ``port=0`` picks a
    free port; read ``server.port`` or ``server.url`` after starting.
    """

    def __init__(
        self,
        *,
        address: str = "127.0.0.1",
        port: int = 0,
        broker: Broker | str | None = None,
        redis_url: str | None = None,
        prefix: str | None = None,
        options: Mapping[str, Any] | None = None,
        allowed_origins: str | Iterable[str] | None = None,
        wsgi_app: Callable[..., Any] | None = None,
    ) -> None:
        self.config = ServerConfig.load(options)
        self.origins = (
            OriginPolicy.from_settings()
            if allowed_origins is None
            else OriginPolicy(allowed_origins)
        )
        if broker is None:
            broker = "redis" if redis_url else "memory"
        if broker == "redis":
            broker = RedisBroker(
                redis_url or DEFAULT_URL,
                DEFAULT_PREFIX if prefix is None else prefix,
                reconnect_max_delay=self.config.reconnect_max_delay,
                presence_ttl=self.config.presence_ttl,
            )
        elif broker == "memory":
            broker = MemoryBroker()
        if not isinstance(broker, Broker):
            raise ValueError(f"broker={broker!r} is not valid; give 'memory', 'redis' or a Broker")
        self.broker = broker
        self.hub = Hub(self.config, broker)
        self.node_id = secrets.token_hex(6)
        broker.attach(self.hub, self.node_id)
        self.address = address
        self.port = port
        self.wsgi_app = wsgi_app
        from .. import __version__

        self.software = f"rtbridge/{__version__}"
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: tornado.httpserver.HTTPServer | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._thread: threading.Thread | None = None
        self._started_at = 0.0
        #: Optional ops offered in the welcome frame (set when the server starts).
        self.features: tuple[str, ...] = FEATURES
        self._last_summary: tuple[int, ...] = ()
        self.running = False

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
        self.features = self.hub.features = available_features()
        if "call" in self.features:
            self.hub.calls = CallRunner(self.config.call_threads)
        await self.broker.start()
        self._tasks = [asyncio.create_task(self._sweep(), name="rtbridge-sweep")]
        if isinstance(self.broker.presence, RedisPresence):
            self._tasks.append(
                asyncio.create_task(
                    run_refresh(self.broker.presence, self.hub, self.config.presence_ttl / 3),
                    name="rtbridge-presence",
                )
            )
        if self.config.stats_interval > 0:
            self._tasks.append(asyncio.create_task(self._summaries(), name="rtbridge-stats"))
        self._started_at = time.monotonic()
        self.running = True
        registry.register(self)
        logger.info(
            "rtbridge: serving %s (broker: %s%s)",
            self.url,
            self.broker.describe(),
            ", with the WSGI app" if self.wsgi_app is not None else "",
        )

    async def astop(self, timeout: float = 3.0) -> None:
        """Close every socket with 1001, wait up to ``timeout`` for them, then stop."""
        if not self.running:
            return
        self.running = False
        registry.unregister(self)
        if self._http is not None:
            self._http.stop()
        self.hub.close_all(CloseCode.GOING_AWAY, "server shutting down")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.hub.wait_closed(), timeout)
        # Presence leaves of the closed sockets, so the others see them go at once.
        await self.hub.drain(timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.broker.stop()
        if self._http is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._http.close_all_connections(), 1.0)
            self._http = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self.hub.calls is not None:
            self.hub.calls.shutdown()
            self.hub.calls = None
        logger.info("rtbridge: stopped %s; %s", self.url, self.summary())

    # Running in a background thread -------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Server:
        """Run the server on a new event loop in a daemon thread; return once it listens."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
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
        """Deliver ``message`` to this node's subscribers; safe from any thread, never blocks.

        This bypasses the broker: with Redis, publish through ``RedisBackend`` to reach
        every node.
        """
        self.call_soon(self.hub.deliver_message, message)

    def revoke(self, user_id: str, channel: str, revoked_at: float | None = None) -> None:
        """End ``user_id``'s subscriptions to ``channel`` on this node; safe from any thread.

        This bypasses the broker: use ``rtbridge.revoke()`` (the backend) to reach every node.
        """
        self.call_soon(self.hub.revoke, user_id, channel, revoked_at or time.time())

    # Housekeeping -------------------------------------------------------------------------

    async def _sweep(self) -> None:
        config = self.config
        interval = max(0.05, min(1.0, config.heartbeat / 2, config.idle_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                self.hub.sweep()
            except Exception:
                logger.exception("rtbridge: heartbeat sweep failed")

    async def _summaries(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_interval)
            stats = self.hub.stats
            snapshot = (len(self.hub.connections), stats.opened, stats.messages, stats.errors)
            if snapshot != self._last_summary:
                self._last_summary = snapshot
                logger.info("rtbridge: %s", self.summary())

    def summary(self) -> str:
        """Return a one-line summary of the node's activity since it started."""
        stats = self.hub.stats
        return (
            f"{len(self.hub.connections)} connection(s), {self.hub.channel_count()} channel(s); "
            f"since start: {stats.opened} opened, {stats.closed} closed, {stats.refused} "
            f"refused, {stats.messages} messages, {stats.frames} frames sent, {stats.gaps} gaps, "
            f"{stats.errors} bad frames, {stats.abusers} abusive, {stats.slow_consumers} slow, "
            f"{stats.idle_closed} idle, {stats.whispers} whispers, {stats.calls} calls, "
            f"{stats.revoked} revoked"
        )
