"""A real rtbridge server (``local`` backend, in-memory hub) driven by JSON lines on stdin.

Used by the JS client's integration tests:
``python server.py [--port P] [--heartbeat S] [--idle-timeout S]``. The same port also serves
Django (``tests.clients.urls``: the auth endpoint and the data routers of ``tests.testapp``,
on a SQLite file in a temporary folder). It prints ``{"ok": true, "port": P, "url": ...,
"http_url": ...}`` once it listens, then answers each command line with one JSON line:

* ``{"cmd": "publish", "channels": [...], "event": "e", "data": {...}, "exclude": null}``
  publishes through ``rtbridge.publish`` (the ``local`` backend → the server's hub);
* ``{"cmd": "user", "username": "ann"}`` creates the user (once) and a logged-in session:
  ``{"user_id", "sessionid"}``;
* ``{"cmd": "orm", "model": "TodoItem", "op": "create"|"update"|"delete", "id": 1,
  "values": {...}}`` changes a ``tests.testapp`` model through the ORM, so the model mixin
  publishes (``owner`` may name a user); answers ``{"id"}``;
* ``{"cmd": "revoke", "username": "ann", "channel": "private-..."}`` calls ``rtbridge.revoke``;
* ``{"cmd": "expire_next_tokens", "count": 1}`` backdates the next ``count`` signatures by two
  hours, so the next subscription token the auth endpoint issues is already expired;
* ``{"cmd": "stop"}`` stops the server (sockets get close code 1001), keeping the port;
* ``{"cmd": "start"}`` starts it again on the same port;
* ``{"cmd": "quit"}`` (or end of input) stops and exits.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

# The repository root, so this runs from any directory without installing rtbridge.
sys.path.insert(0, str(Path(__file__).resolve().parents[5]))


def configure(heartbeat: float, idle_timeout: float, database: str) -> None:
    """Set up Django (the test app, sessions, CSRF) with the ``local`` backend (loopback tests)."""
    import django
    from django.conf import settings
    from django.core.management import call_command

    settings.configure(
        SECRET_KEY="rtbridge-js-harness",
        ALLOWED_HOSTS=["127.0.0.1", "localhost"],
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "rtbridge",
            "tests.testapp",
        ],
        MIDDLEWARE=[
            "rtbridge.middleware.SocketIdMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        ROOT_URLCONF="tests.clients.urls",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": database}},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        USE_TZ=True,
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        RTBRIDGE_BACKEND="local",
        RTBRIDGE_ALLOWED_ORIGINS="*",
        RTBRIDGE_SERVER={
            "heartbeat": heartbeat,
            "idle_timeout": idle_timeout,
            "stats_interval": 0,
        },
    )
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def login(username: str) -> dict[str, Any]:
    """Create ``username`` (once) and a logged-in session for it; return its ids."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore

    user, _created = User.objects.get_or_create(username=username)
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return {"user_id": user.pk, "sessionid": session.session_key}


def expire_next_tokens(count: int) -> None:
    """Backdate the next ``count`` timestamped signatures (subscription tokens) by two hours."""
    import threading
    import time

    from django.core import signing

    lock = threading.Lock()
    left = [count]
    original = signing.TimestampSigner.timestamp

    def timestamp(self: signing.TimestampSigner) -> str:
        with lock:
            if left[0] <= 0:
                return original(self)
            left[0] -= 1
            if left[0] == 0:
                signing.TimestampSigner.timestamp = original  # type: ignore[method-assign]
        return signing.b62_encode(int(time.time()) - 7200)

    signing.TimestampSigner.timestamp = timestamp  # type: ignore[method-assign]


def orm(command: dict[str, Any]) -> dict[str, Any]:
    """Create, update or delete one ``tests.testapp`` object through the ORM (so it publishes)."""
    from django.apps import apps
    from django.contrib.auth.models import User

    model = apps.get_model("testapp", command["model"])
    values = dict(command.get("values") or {})
    if isinstance(values.get("owner"), str) and model.__name__ == "TodoList":
        values["owner"] = User.objects.get(username=values["owner"])
    op = command["op"]
    if op == "create":
        obj = model.objects.create(**values)
    else:
        obj = model.objects.get(pk=command["id"])
        if op == "delete":
            obj.delete()
            return {"id": command["id"]}
        for key, value in values.items():
            setattr(obj, key, value)
        obj.save()
    return {"id": obj.pk}


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
    folder = tempfile.TemporaryDirectory(prefix="rtbridge-js-harness-")
    configure(args.heartbeat, args.idle_timeout, str(Path(folder.name) / "db.sqlite3"))
    from django.core.wsgi import get_wsgi_application

    import rtbridge
    from rtbridge.server import Server

    wsgi = get_wsgi_application()

    def start(port: int) -> Server:
        return Server(address="127.0.0.1", port=port, allowed_origins="*", wsgi_app=wsgi).start()

    server = start(args.port)
    port = server.port
    reply(ok=True, port=port, url=server.url, http_url=server.http_url)
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
            elif cmd == "user":
                reply(ok=True, cmd=cmd, **login(command["username"]))
                continue
            elif cmd == "orm":
                reply(ok=True, cmd=cmd, **orm(command))
                continue
            elif cmd == "revoke":
                from django.contrib.auth.models import User

                rtbridge.revoke(User.objects.get(username=command["username"]), command["channel"])
            elif cmd == "expire_next_tokens":
                expire_next_tokens(int(command.get("count", 1)))
            elif cmd == "stop":
                server.stop()
            elif cmd == "start":
                server = start(port)
            elif cmd == "quit":
                break
            else:
                raise ValueError(
                    f"unknown command {cmd!r}; give publish, user, orm, revoke, "
                    "expire_next_tokens, stop, start or quit"
                )
        except Exception as exc:  # report to the test and keep serving
            reply(ok=False, error=f"{type(exc).__name__}: {exc}")
        else:
            reply(ok=True, cmd=cmd)
    server.stop()
    folder.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
