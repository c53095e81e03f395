"""A real rtbridge server (``local`` backend, in-memory hub) driven by JSON lines on stdin.

Used by the JS client's integration tests:
``python server.py [--port P] [--heartbeat S] [--idle-timeout S]``. It prints
``{"ok": true, "port": P, "url": ...}`` once it listens, then answers each command line with
one JSON line:

* ``{"cmd": "publish", "channels": [...], "event": "e", "data": {...}, "exclude": null}``
  publishes through ``rtbridge.publish`` (the ``local`` backend → the server's hub);
* ``{"cmd": "stop"}`` stops the server (sockets get close code 1001), keeping the port;
* ``{"cmd": "start"}`` starts it again on the same port;
* ``{"cmd": "quit"}`` (or end of input) stops and exits.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# The repository root, so this runs from any directory without installing rtbridge.
sys.path.insert(0, str(Path(__file__).resolve().parents[5]))


def configure(heartbeat: float, idle_timeout: float) -> None:
    """Set up Django with the ``local`` backend and every origin allowed (loopback tests)."""
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="rtbridge-js-harness",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=["rtbridge"],
        RTBRIDGE_BACKEND="local",
        RTBRIDGE_ALLOWED_ORIGINS="*",
        RTBRIDGE_SERVER={
            "heartbeat": heartbeat,
            "idle_timeout": idle_timeout,
            "stats_interval": 0,
        },
    )
    django.setup()


def reply(**fields: Any) -> None:
    """Write one JSON line to stdout."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main() -> int:
    """Run the server and obey commands until ``quit`` or end of input."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--heartbeat", type=float, default=5.0, help="seconds between heartbeats")
    parser.add_argument(
        "--idle-timeout", type=float, default=60.0, help="seconds of client silence"
    )
    args = parser.parse_args()
    configure(args.heartbeat, args.idle_timeout)
    import rtbridge
    from rtbridge.server import Server

    def start(port: int) -> Server:
        return Server(address="127.0.0.1", port=port, allowed_origins="*").start()

    server = start(args.port)
    port = server.port
    reply(ok=True, port=port, url=server.url)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            command = json.loads(line)
            cmd = command.get("cmd")
            if cmd == "publish":
                rtbridge.publish(
                    command["channels"],
                    command["event"],
                    command.get("data"),
                    exclude=command.get("exclude"),
                )
            elif cmd == "stop":
                server.stop()
            elif cmd == "start":
                server = start(port)
            elif cmd == "quit":
                break
            else:
                raise ValueError(f"unknown command {cmd!r}; give publish, stop, start or quit")
        except Exception as exc:  # report to the test and keep serving
            reply(ok=False, error=f"{type(exc).__name__}: {exc}")
        else:
            reply(ok=True, cmd=cmd)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
