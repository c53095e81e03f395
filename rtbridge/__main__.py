"""The ``rtbridge`` command: ``rtbridge serve`` runs a server node, ``rtbridge demo`` the demo."""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the ``rtbridge`` command line; return the exit status."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["demo"]:
        # The demo parses its own options (rtbridge demo --help).
        from .demo.cli import main as demo_main

        return demo_main(arguments[1:])
    parser = argparse.ArgumentParser(
        prog="rtbridge", description="rtbridge: real-time pages for Django."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run an rtbridge server node from a Django settings module",
        description="Run the rtbridge WebSocket server (like manage.py rtbridge_server).",
    )
    serve.add_argument(
        "--settings",
        help="Django settings module, e.g. mysite.settings (default: $DJANGO_SETTINGS_MODULE).",
    )
    serve.add_argument(
        "-v",
        "--verbosity",
        type=int,
        default=1,
        choices=[0, 1, 2, 3],
        help="0 warnings only, 1-2 a summary, 3 every connection (default 1).",
    )
    # Imported here: the server options need Django and Tornado, the demo does not.
    from .server.runner import add_arguments

    add_arguments(serve)
    commands.add_parser(
        "demo", help="run the real-time todo demo (rtbridge demo --help for its options)"
    )
    args = parser.parse_args(arguments)

    settings_module = args.settings or os.environ.get("DJANGO_SETTINGS_MODULE")
    if not settings_module:
        parser.error(
            "serve needs Django settings: pass --settings mysite.settings or set "
            "DJANGO_SETTINGS_MODULE."
        )
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    # Like manage.py, find the project's modules in the current directory.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    import django

    django.setup()
    from .backends.loading import backend_class
    from .server.runner import StartupError, build_server, configure_logging, run

    try:
        configure_logging(args.verbosity, args.log_format)
        server = build_server(
            backend_class=backend_class,
            address=args.address,
            port=args.port,
            with_django=args.with_django,
            redis_url=args.redis_url,
        )
        return run(server)
    except StartupError as exc:
        print(f"rtbridge: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
