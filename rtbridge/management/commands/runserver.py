"""``manage.py runserver`` with the rtbridge socket: Django's dev server, served by Tornado."""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from django.db import connections
from django.utils import autoreload

from ...backends.loading import backend_class

# As daphne does: extend staticfiles' runserver when it is installed (it serves STATIC_URL
# with DEBUG), else Django's own. Which `runserver` wins depends on INSTALLED_APPS order:
# rtbridge must come before django.contrib.staticfiles (check rtbridge.W022 says so).
if TYPE_CHECKING:
    from django.core.management.commands.runserver import Command as BaseRunserverCommand

    from ...server.app import Server
    from ...server.loopback import LoopbackReceiver
elif apps.is_installed("django.contrib.staticfiles"):
    from django.contrib.staticfiles.management.commands.runserver import (
        Command as BaseRunserverCommand,
    )
else:
    from django.core.management.commands.runserver import Command as BaseRunserverCommand

#: Backends whose pages connect to the rtbridge server (``client_config()["backend"]``).
SELF_HOSTED = frozenset({"local", "redis"})


class Command(BaseRunserverCommand):
    # Set by Django's handle() from the addrport argument.
    addr: str
    port: str
    help = (
        "Start the development server with the rtbridge socket: the site and the WebSocket on "
        "one port (Tornado), with the autoreloader. With RTBRIDGE_BACKEND='local' the "
        "project's other processes (shell, commands, workers) publish to it too. Hosted "
        "backends (Pusher, PubNub, Firebase) need no socket here: Django's server runs."
    )

    def inner_run(self, *args: Any, **options: Any) -> None:
        """Run the checks, then the site and the socket until the process ends.

        With the autoreloader this runs in the reloader's child process, in a thread of its
        own; a change to a Python file restarts the child, and pages reconnect by themselves.
        """
        try:
            alias: str | None = backend_class().alias
        except ImproperlyConfigured:
            alias = None  # the system checks below say what is wrong with RTBRIDGE_BACKEND
        if alias is not None and alias not in SELF_HOSTED:
            super().inner_run(*args, **options)
            return
        # As Django's inner_run: an import error silenced in the parent is raised here.
        autoreload.raise_last_exception()
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            self.check(display_num_errors=True)
        self.check_migrations()
        for connection in connections.all(initialized_only=True):
            connection.close()
        runner = _server_runner()
        runner.configure_logging(int(options.get("verbosity", 1)))
        try:
            server = runner.build_server(
                backend_class=backend_class,
                address="0.0.0.0" if self.addr == "0" else self.addr,
                port=int(self.port),
                wsgi_app=self.get_handler(*args, **options),
                # --nothreading: one request at a time, as Django's server; the sockets go on.
                options=None if options["use_threading"] else {"wsgi_threads": 1},
            )
            runner.serve(server, self._started)
        except runner.StartupError as exc:
            self.stderr.write(f"Error: {exc}")
            # sys.exit() would end only this thread under the autoreloader (as Django does).
            os._exit(1)
        except KeyboardInterrupt:
            sys.exit(0)

    def _started(self, server: Server, receiver: LoopbackReceiver | None) -> None:
        self.on_bind(server.port)
        broker = _server_runner().describe_broker(server.broker)
        local = (
            f"; this project's other processes publish to it through {receiver.address}"
            if receiver is not None
            else ""
        )
        self.stdout.write(f"rtbridge socket at {server.url} (broker: {broker}{local})")


def _server_runner() -> ModuleType:
    # Tornado is optional (the `server` extra): this command also runs, as Django's, for the
    # hosted backends, so the server is imported only when the socket is served.
    try:
        from ...server import runner
    except ImportError as exc:
        raise CommandError(
            f"runserver serves the rtbridge socket with Tornado, which is not installed ({exc}); "
            "install it with: pip install 'rtbridge[server]'"
        ) from exc
    return runner
