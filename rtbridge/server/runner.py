"""Run a server node from the Django settings until SIGTERM, SIGINT or SIGHUP."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from django.apps import apps
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

from .. import conf
from ..redis_target import TARGET_OPTIONS, RedisTarget, from_options, from_url
from ..redis_wire import DEFAULT_PREFIX, check_prefix
from . import loops
from .app import DEFAULT_ADDRESS, Server
from .brokers import Broker, MemoryBroker, RedisBroker
from .cluster import redis_broker
from .config import ServerConfig
from .logs import JsonFormatter, event
from .loopback import LoopbackReceiver

__all__ = [
    "StartupError",
    "add_arguments",
    "build_server",
    "configure_logging",
    "describe_broker",
    "resolve_port",
    "restart_in_place",
    "run",
    "serve",
]

logger = logging.getLogger("rtbridge.server")

DEFAULT_PORT = 8000


class StartupError(Exception):
    """The server cannot start (bad settings, or the port cannot be bound); the text says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the server's command-line options to ``parser``."""
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"TCP port (default: $PORT if set, else {DEFAULT_PORT}).",
    )
    parser.add_argument(
        "--log-format",
        choices=conf.LOG_FORMATS,
        default=None,
        help="text lines or one JSON object per line (default: RTBRIDGE_SERVER['log_format']).",
    )
    parser.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        help=f"address to listen on (default {DEFAULT_ADDRESS}).",
    )
    parser.add_argument(
        "--with-django",
        action="store_true",
        help="also serve the project's Django site (WSGI, in a thread pool) on every other path.",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="take messages from this Redis (overrides RTBRIDGE_OPTIONS['url'], 'sentinel' or "
        "'cluster'; selects the Redis broker whatever RTBRIDGE_BACKEND says).",
    )


def _broker(backend: type, redis_url: str | None, config: ServerConfig) -> Broker:
    # The backend's alias is what it tells the JS client ("redis": the self-hosted server fed
    # by Redis), so it also says whether this node must read Redis; RedisBackend subclasses
    # inherit it. The server imports no backend: the options are read as the wire defines them.
    alias = getattr(backend, "alias", None)
    uses_redis = alias == "redis"
    if not uses_redis and redis_url is None:
        if alias != "local":
            logger.warning(
                "rtbridge: RTBRIDGE_BACKEND=%r does not deliver through this server; only "
                "code running in this process, or on this machine with the 'local' backend, "
                "can publish to it.",
                conf.get_setting("RTBRIDGE_BACKEND"),
            )
        return MemoryBroker()
    options = conf.backend_options() if uses_redis else {}
    if redis_url is not None:
        target: RedisTarget = from_url(redis_url, "--redis-url")
    else:
        # The same keys the backend reads (url, sentinel or cluster), so both find one Redis.
        target = from_options(
            {key: options[key] for key in TARGET_OPTIONS if key in options}, "RTBRIDGE_OPTIONS"
        )
    prefix = check_prefix(options.get("prefix", DEFAULT_PREFIX), "RTBRIDGE_OPTIONS['prefix']")
    return redis_broker(
        target,
        prefix,
        reconnect_max_delay=config.reconnect_max_delay,
        presence_ttl=config.presence_ttl,
    )


def resolve_port(port: int | None) -> int:
    """Return ``port``, else ``$PORT`` (as platforms such as Heroku set it), else 8000."""
    if port is not None:
        return port
    text = os.environ.get("PORT")
    if text is None or text == "":
        return DEFAULT_PORT
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise StartupError(
            f"$PORT={text!r} is not a TCP port; set it to a number from 0 to 65535, or pass --port."
        )
    return value


def build_server(
    *,
    backend_class: Callable[[], type],
    address: str = DEFAULT_ADDRESS,
    port: int | None = None,
    with_django: bool = False,
    redis_url: str | None = None,
    wsgi_app: Any = None,
    options: Mapping[str, Any] | None = None,
) -> Server:
    """Build a server from the Django settings (broker, limits, origins, the WSGI app).

    ``backend_class()`` returns the class ``RTBRIDGE_BACKEND`` names (the caller passes
    ``rtbridge.backends.loading.backend_class``: the server imports no backend code).
    ``wsgi_app`` serves the site instead of the one ``with_django`` builds (``runserver``
    passes its handler); ``options`` override keys of ``RTBRIDGE_SERVER``. ``port=None``
    takes ``$PORT``, else 8000.
    """
    port = resolve_port(port)
    try:
        config = ServerConfig.load(options)
        broker = _broker(backend_class(), redis_url, config)
    except ImproperlyConfigured as exc:
        raise StartupError(str(exc)) from exc
    if wsgi_app is None and with_django:
        wsgi_app = get_wsgi_application()
        serve_static = config.serve_static
        if serve_static is None:
            serve_static = conf.debug_enabled()
        if serve_static and apps.is_installed("django.contrib.staticfiles"):
            wsgi_app = StaticFilesHandler(wsgi_app)
    try:
        return Server(address=address, port=port, broker=broker, options=options, wsgi_app=wsgi_app)
    except ImproperlyConfigured as exc:
        raise StartupError(str(exc)) from exc


def configure_logging(verbosity: int, log_format: str | None = None) -> None:
    """Log ``rtbridge.server`` to stderr unless the project's LOGGING already handles it.

    ``log_format`` is ``"text"`` or ``"json"`` (one object per line, see ``logs.FIELDS``);
    ``None`` takes ``RTBRIDGE_SERVER['log_format']``.
    """
    if log_format is None:
        try:
            log_format = conf.server_settings()["log_format"]
        except ImproperlyConfigured as exc:
            raise StartupError(str(exc)) from exc
    level = logging.DEBUG if verbosity >= 3 else logging.WARNING if verbosity == 0 else logging.INFO
    server_logger = logging.getLogger("rtbridge.server")
    server_logger.setLevel(level)
    if server_logger.handlers or logging.getLogger("rtbridge").handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    formatter = (
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    handler.setFormatter(formatter)
    server_logger.addHandler(handler)
    server_logger.propagate = False


def run(server: Server) -> int:
    """Serve until a signal; close every socket with 1001 (a graceful drain).

    SIGTERM and SIGINT then return 0. SIGHUP (what ``systemctl reload`` and ``supervisorctl
    signal HUP`` send) drains the same way and then restarts the process in place with the
    same command line (``os.execv``: same PID, new code and settings), so a reload never
    stops the service, whatever the supervisor's restart policy; the logs go to stderr,
    which the supervisor owns, so there is no log file to reopen.
    """

    def announce(server: Server, receiver: LoopbackReceiver | None) -> None:
        print(
            f"rtbridge server on {server.url} (broker: {describe_broker(server.broker)})"
            + (f", Django at {server.http_url}/" if server.wsgi_app is not None else "")
            + (f"; local publishes on {receiver.address}" if receiver is not None else "")
            + "; Ctrl-C to stop.",
            flush=True,
        )

    stopped_by = serve(server, announce)
    if stopped_by is not None and stopped_by == getattr(signal, "SIGHUP", None):
        restart_in_place()
    return 0


def serve(
    server: Server, on_started: Callable[[Server, LoopbackReceiver | None], None]
) -> int | None:
    """Run ``server`` on a new event loop in this thread; call ``on_started`` once it listens.

    With the in-memory broker (the ``local`` backend) a ``LoopbackReceiver`` runs beside it,
    so the project's other processes on this machine can publish. In the main thread,
    SIGTERM, SIGINT and SIGHUP stop the server gracefully (sockets get 1001) and the signal
    is returned; in another thread (Django's autoreloader runs ``runserver`` in one) it
    serves until the process ends.
    """
    stopped_by: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()

        def on_signal(signum: int) -> None:
            stopped_by.append(signum)
            stop.set()

        if threading.current_thread() is threading.main_thread():
            loop = asyncio.get_running_loop()
            names = ("SIGTERM", "SIGINT", "SIGHUP")
            for signum in (getattr(signal, name) for name in names if hasattr(signal, name)):
                # Windows has no loop signal handlers (nor SIGHUP): Ctrl-C raises
                # KeyboardInterrupt there.
                with contextlib.suppress(NotImplementedError):
                    loop.add_signal_handler(signum, on_signal, signum)
        try:
            await server.astart()
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {server.address}:{server.port}: {exc.strerror or exc}; "
                "choose another port or stop what uses it."
            ) from exc
        receiver = LoopbackReceiver(server) if isinstance(server.broker, MemoryBroker) else None
        if receiver is not None:
            try:
                await receiver.start()
            except OSError as exc:  # PermissionError: a rendezvous directory not ours
                await server.astop()
                raise StartupError(f"cannot take local publishes: {exc}") from exc
        on_started(server, receiver)
        await stop.wait()
        logger.info(
            "rtbridge: %s: draining",
            signal.Signals(stopped_by[0]).name if stopped_by else "stop",
            extra=event("node.draining"),
        )
        if receiver is not None:
            await receiver.stop()
        await server.astop()

    loops.run(main(), server.config.event_loop)
    return stopped_by[0] if stopped_by else None


def restart_in_place() -> None:
    """Replace this process with a fresh run of the same command line (after SIGHUP)."""
    argv = [sys.executable, *sys.orig_argv[1:]]
    logger.info("rtbridge: restarting in place: %s", " ".join(argv), extra=event("node.reload"))
    for handler in logging.getLogger("rtbridge.server").handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def describe_broker(broker: Broker) -> str:
    """Return the broker for a start-up line: ``memory``, or ``redis <url without password>``."""
    if isinstance(broker, RedisBroker):
        return f"redis {broker.target.describe()}"
    return broker.name
