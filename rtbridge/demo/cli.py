"""``rtbridge demo``: run the real-time todo demo from the installed package."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["BACKENDS", "HOSTED_ENVIRONMENT", "DemoError", "add_arguments", "main", "run"]

SETTINGS_MODULE = "rtbridge.demo.settings"
BACKENDS = ("local", "redis", "pusher", "pubnub", "firebase")

#: Environment variables read for each hosted backend: (variable, RTBRIDGE_OPTIONS key, required).
HOSTED_ENVIRONMENT: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "pusher": (
        ("PUSHER_APP_ID", "app_id", True),
        ("PUSHER_KEY", "key", True),
        ("PUSHER_SECRET", "secret", True),
        ("PUSHER_CLUSTER", "cluster", False),
        ("PUSHER_HOST", "host", False),
        ("PUSHER_PORT", "port", False),
        ("PUSHER_SSL", "ssl", False),
    ),
    "pubnub": (
        ("PUBNUB_PUBLISH_KEY", "publish_key", True),
        ("PUBNUB_SUBSCRIBE_KEY", "subscribe_key", True),
        ("PUBNUB_SECRET_KEY", "secret_key", False),
        ("PUBNUB_ORIGIN", "origin", False),
        ("PUBNUB_SSL", "ssl", False),
    ),
    "firebase": (
        ("FIREBASE_DATABASE_URL", "database_url", True),
        ("FIREBASE_CREDENTIALS", "credentials", False),
        ("FIREBASE_DATABASE_EMULATOR_HOST", "emulator_host", False),
    ),
}

#: The vendor JS SDK each hosted backend's page loads (override with the variable named).
SDK_SCRIPTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pusher": (
        "RTBRIDGE_DEMO_PUSHER_JS",
        ("https://cdn.jsdelivr.net/npm/pusher-js@8.6.0/dist/web/pusher.min.js",),
    ),
    "pubnub": (
        "RTBRIDGE_DEMO_PUBNUB_JS",
        ("https://cdn.jsdelivr.net/npm/pubnub@12.0.3/dist/web/pubnub.min.js",),
    ),
    "firebase": (
        "RTBRIDGE_DEMO_FIREBASE_JS",
        (
            "https://www.gstatic.com/firebasejs/12.19.0/firebase-app.js",
            "https://www.gstatic.com/firebasejs/12.19.0/firebase-database.js",
            "https://www.gstatic.com/firebasejs/12.19.0/firebase-auth.js",
        ),
    ),
}


#: An absolute module URL inside a vendor SDK file (Firebase's modules import each other so).
CDN_IMPORT = re.compile(r"https://www\.gstatic\.com/firebasejs/[\w.\-]+/[\w.\-]+\.js")


class DemoError(Exception):
    """The demo cannot start; the text says why and what to do."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser`` (``rtbridge demo --help``)."""
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000).")
    parser.add_argument(
        "--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1)."
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the SQLite database and the secret key live (default "
        "$XDG_DATA_HOME/rtbridge-demo or ~/.local/share/rtbridge-demo).",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="transport: local (one process, default), redis (plus an rtbridge server "
        "process), or a hosted one with credentials from the environment (docs/demo.md).",
    )
    parser.add_argument(
        "--redis-url",
        default=None,
        help="Redis for --backend redis (default redis://127.0.0.1:6379/0).",
    )
    parser.add_argument(
        "--server-port",
        type=int,
        default=None,
        help="port of the rtbridge server process with --backend redis (default: --port + 1).",
    )
    parser.add_argument(
        "--reset", action="store_true", help="delete the demo's data first and start afresh."
    )
    parser.add_argument(
        "-v",
        "--verbosity",
        type=int,
        default=1,
        choices=[0, 1, 2, 3],
        help="0 quiet, 1 normal, 3 every socket event (default 1).",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rtbridge demo [options]``; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="rtbridge demo",
        description="Run the real-time todo demo: open two windows, change one, watch the other.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed ``args`` until Ctrl-C; return the exit status."""
    try:
        return _run(args)
    except DemoError as exc:
        print(f"rtbridge demo: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


# Set-up -----------------------------------------------------------------------------------


def _check_port(address: str, port: int, what: str, flag: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # The same option Tornado binds with, so a port in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            raise DemoError(
                f"port {port} on {address} is taken ({exc.strerror or exc}), so the {what} "
                f"cannot listen there; stop what uses it or choose another: {flag} {port + 2}"
            ) from None


def _reachable_host(address: str) -> str:
    """Return ``--address`` as a URL host this machine reaches (loopback for "everywhere")."""
    host = "127.0.0.1" if address in ("0.0.0.0", "::", "") else address
    return f"[{host}]" if ":" in host else host


def _allowed_hosts(address: str) -> list[str]:
    """Return ALLOWED_HOSTS for ``--address``: loopback names, plus the address itself.

    Listening on every interface (``0.0.0.0``, ``::``) means "let other machines in", whose
    host names the demo cannot know: then any host is allowed (the demo's passwords are
    public anyway; never run it where that matters).
    """
    hosts = ["localhost", "127.0.0.1", "[::1]"]
    if address in ("0.0.0.0", "::", ""):
        return ["*"]
    host = f"[{address}]" if ":" in address else address
    if host not in hosts:
        hosts.append(host)
    return hosts


def _hosted_options(backend: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """Return ``RTBRIDGE_OPTIONS`` for a hosted backend from its environment variables."""
    options: dict[str, Any] = {}
    missing = []
    for variable, key, required in HOSTED_ENVIRONMENT[backend]:
        value = environ.get(variable)
        if not value:
            if required:
                missing.append(variable)
            continue
        if key == "port":
            options[key] = int(value)
        elif key == "ssl":
            options[key] = value.lower() in ("1", "true", "yes")
        else:
            options[key] = value
    if missing:
        raise DemoError(
            f"--backend {backend} reads its credentials from the environment, and "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; export "
            f"{' '.join(v + '=...' for v in missing)} (see docs/demo.md)"
        )
    return options


def _environment(args: argparse.Namespace, data_dir: Path) -> dict[str, str]:
    """Return the RTBRIDGE_DEMO_* variables that configure ``rtbridge.demo.settings``."""
    env = {
        "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
        "RTBRIDGE_DEMO_DATA_DIR": str(data_dir),
        "RTBRIDGE_DEMO_BACKEND": args.backend,
        "RTBRIDGE_DEMO_OPTIONS": "{}",
        "RTBRIDGE_DEMO_PUBLIC_URL": "",
        "RTBRIDGE_DEMO_SDK": "[]",
        "RTBRIDGE_DEMO_SDK_FILES": "{}",
        "RTBRIDGE_DEMO_IMPORT_MAP": "{}",
        "RTBRIDGE_DEMO_ALLOWED_HOSTS": json.dumps(_allowed_hosts(args.address)),
    }
    if args.backend == "redis":
        env["RTBRIDGE_DEMO_OPTIONS"] = json.dumps({"url": args.redis_url})
        host = _reachable_host(args.address)
        env["RTBRIDGE_DEMO_PUBLIC_URL"] = f"ws://{host}:{args.server_port}/rtbridge/ws"
    elif args.backend in HOSTED_ENVIRONMENT:
        env["RTBRIDGE_DEMO_OPTIONS"] = json.dumps(_hosted_options(args.backend, os.environ))
        variable, default = SDK_SCRIPTS[args.backend]
        given = os.environ.get(variable)
        scripts, files = _sdk_scripts(given.split() if given else list(default))
        env["RTBRIDGE_DEMO_SDK"] = json.dumps(scripts)
        env["RTBRIDGE_DEMO_SDK_FILES"] = json.dumps(files)
        env["RTBRIDGE_DEMO_IMPORT_MAP"] = json.dumps(_import_map(files))
    return env


def _sdk_scripts(sources: list[str]) -> tuple[list[str], dict[str, str]]:
    """Return the script URLs for ``sources`` and the local files the demo serves among them.

    A source is a URL (``https://...``, ``/static/...``) or the path of a file, served by the
    demo at ``/demo-sdk/<n>/<file name>`` so that no CDN is needed.
    """
    scripts: list[str] = []
    files: dict[str, str] = {}
    for index, source in enumerate(sources):
        path = Path(source).expanduser()
        if "://" in source or (source.startswith("/") and not path.is_file()):
            scripts.append(source)
        elif path.is_file():
            name = f"{index}/{path.name}"
            files[name] = str(path.resolve())
            scripts.append(f"/demo-sdk/{name}")
        else:
            raise DemoError(f"the SDK script {source!r} is neither a URL nor an existing file")
    return scripts, files


def _import_map(files: Mapping[str, str]) -> dict[str, str]:
    """Map the CDN URLs that local SDK modules import to the local copies the demo serves.

    Firebase's browser modules import each other by absolute URL
    (``https://www.gstatic.com/firebasejs/<version>/firebase-app.js``); with local copies an
    import map sends those imports to them, so the page needs no network.
    """
    local = {Path(name).name: f"/demo-sdk/{name}" for name in files}
    mapping: dict[str, str] = {}
    for path in files.values():
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = Path(path).read_text(encoding="utf-8")
            for url in set(CDN_IMPORT.findall(text)):
                target = local.get(url.rsplit("/", 1)[-1])
                if target is not None:
                    mapping[url] = target
    return mapping


def _prepare_database() -> bool:
    """Apply migrations and create the demo users; return True on the first start."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from .todo.demo_data import ensure_demo_data

    return ensure_demo_data()


@contextlib.contextmanager
def _server_process(args: argparse.Namespace, env: Mapping[str, str]) -> Iterator[None]:
    """Run ``rtbridge serve`` for --backend redis, stopped (by its pid) when the block ends."""
    if args.backend != "redis":
        yield
        return
    command = [
        sys.executable,
        "-m",
        "rtbridge",
        "serve",
        "--settings",
        SETTINGS_MODULE,
        "--address",
        args.address,
        "--port",
        str(args.server_port),
        "--redis-url",
        args.redis_url,
        "--verbosity",
        str(args.verbosity if args.verbosity > 1 else 0),
    ]
    # Its start-up line would repeat ours; its warnings and errors (stderr) still show.
    quiet = subprocess.DEVNULL if args.verbosity <= 1 else None
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=quiet)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise DemoError(
                    f"the rtbridge server process exited with status {process.returncode} "
                    f"(command: {' '.join(command)})"
                )
            try:
                host = _reachable_host(args.address).strip("[]")
                socket.create_connection((host, args.server_port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise DemoError(
                        f"the rtbridge server process did not listen on port "
                        f"{args.server_port} within 15 s"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def _banner(args: argparse.Namespace, url: str, data_dir: Path, first_start: bool) -> str:
    from .todo.demo_data import DEMO_USERS

    transport = {
        "local": "the embedded server (Django and the sockets in this process)",
        "redis": f"Redis {args.redis_url} and an rtbridge server process on port "
        f"{args.server_port}",
    }.get(args.backend, f"{args.backend} (credentials from the environment)")
    users = "\n".join(f"    {u.first_name}: {u.username} / {u.password}" for u in DEMO_USERS)
    return (
        f"\n  rtbridge todo demo{' (first start: sample lists created)' if first_start else ''}\n"
        f"\n  Open {url} in two windows (one of them private) and log in as:\n"
        f"{users}\n"
        f"\n  Transport: {transport}\n"
        f"  Data:      {data_dir} (rtbridge demo --reset starts afresh)\n"
        f"  Ctrl-C stops the demo.\n"
    )


# Running ----------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from .paths import default_data_dir

    data_dir = (args.data_dir or default_data_dir()).expanduser().resolve()
    try:
        import tornado  # noqa: F401  (the server the demo runs on)
    except ImportError:
        raise DemoError(
            "the demo runs on rtbridge's server, which needs Tornado: "
            "pip install 'rtbridge[server]'"
        ) from None
    if args.backend == "redis":
        args.redis_url = args.redis_url or "redis://127.0.0.1:6379/0"
        args.server_port = args.server_port or args.port + 1
    elif args.redis_url:
        raise DemoError("--redis-url only applies to --backend redis")
    if not 0 < args.port < 65536:
        raise DemoError(f"--port {args.port} is not a TCP port (1-65535)")
    _check_port(args.address, args.port, "demo", "--port")
    if args.backend == "redis":
        _check_port(args.address, args.server_port, "rtbridge server", "--server-port")
        _check_redis(args.redis_url)
    env = _environment(args, data_dir)
    if args.reset and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ.update(env)

    first_start = _prepare_database()
    _warm_up_backend()
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.wsgi import get_wsgi_application

    from ..server import Server
    from ..server.runner import configure_logging

    configure_logging(args.verbosity if args.verbosity != 1 else 0)
    # Django's views and the sockets share this process; with other backends the sockets are
    # elsewhere and this server only serves the site.
    server = Server(
        address=args.address,
        port=args.port,
        broker="memory",
        wsgi_app=StaticFilesHandler(get_wsgi_application()),
    )
    url = f"http://{_reachable_host(args.address)}:{args.port}/"
    with _server_process(args, env):
        return _serve(server, _banner(args, url, data_dir, first_start))


def _warm_up_backend() -> None:
    """Import the backend's vendor SDK and open it now, so the first change is not the slow one."""
    import importlib

    from ..publishers import get_backend

    backend = get_backend()
    sdk = getattr(type(backend), "sdk", None)
    if sdk:
        importlib.import_module(sdk[0])
    backend.open()


def _check_redis(url: str) -> None:
    try:
        import redis
    except ImportError:
        raise DemoError("--backend redis needs redis-py: pip install 'rtbridge[server]'") from None
    from ..redis_wire import safe_url

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise DemoError(
            f"cannot reach Redis at {safe_url(url)} ({exc}); start redis-server or pass "
            "--redis-url redis://host:port/0"
        ) from None
    finally:
        client.close()


def _serve(server: Any, banner: str) -> int:
    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            # Windows has no loop signal handlers: Ctrl-C raises KeyboardInterrupt there.
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        try:
            await server.astart()
        except OSError as exc:
            raise DemoError(
                f"cannot listen on {server.address}:{server.port}: {exc.strerror or exc}; "
                f"choose another port: --port {server.port + 2}"
            ) from None
        print(banner, flush=True)
        await stop.wait()
        print("rtbridge demo: stopping…", flush=True)
        await server.astop()

    asyncio.run(serve())
    return 0
