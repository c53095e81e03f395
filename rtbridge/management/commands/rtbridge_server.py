"""``manage.py rtbridge_server``: run an rtbridge server node (optionally with the Django site)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...backends.loading import backend_class
from ...server.runner import StartupError, add_arguments, build_server, configure_logging, run


class Command(BaseCommand):
    help = (
        "Run the rtbridge WebSocket server. With RTBRIDGE_BACKEND='redis' (or --redis-url) it "
        "takes messages from Redis, so run as many nodes as you like; with 'local' add "
        "--with-django to serve the site and the sockets from one process."
    )
    # Every system check runs first (the default), so a misconfigured serializer or router
    # stops the start instead of failing in the first page.

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            configure_logging(int(options.get("verbosity", 1)), options.get("log_format"))
            server = build_server(
                backend_class=backend_class,
                address=options["address"],
                port=options["port"],
                with_django=options["with_django"],
                redis_url=options["redis_url"],
            )
            run(server)
        except StartupError as exc:
            raise CommandError(str(exc)) from exc
