"""Router calls over the socket: run the router entry point in threads, as the session user."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module
from typing import Any

from django.contrib.auth import get_user
from django.db import close_old_connections
from django.http import HttpRequest
from django.utils.module_loading import import_string

from .. import conf
from ..messages import encode_json

__all__ = ["ROUTER_ENTRY", "CallHandler", "CallRunner", "failure_body", "load_user"]

logger = logging.getLogger("rtbridge.server")

#: The one function router calls go through, the same one Django's HTTP view uses. Named by
#: its path, as Django names a ROOT_URLCONF: routers sit above the server (they read models,
#: authorize and publish), so the server must not import them; it loads this only when it
#: serves calls, that is with the Django project's app registry ready.
ROUTER_ENTRY = "rtbridge.routers.call"


#: ``handler(route, verb, args, *, user, socket_id) -> (status, JSON-ready body)``.
CallHandler = Callable[..., tuple[int, Any]]


def failure_body(route: str, verb: str, exc: BaseException) -> dict[str, Any]:
    """Return the reply body of a call that raised ``exc`` (the traceback goes to the log).

    The page learns which call failed and, with ``DEBUG``, the exception, as Django's debug
    page would show it; never a traceback.
    """
    message = f"{route}.{verb} failed on the server; the server log has the traceback."
    if conf.debug_enabled():
        message += f" {type(exc).__name__}: {exc}"
    return {"error": {"code": "server_error", "message": message}}


def load_user(session_key: str | None) -> Any:
    """Return the user of the Django session ``session_key`` (``AnonymousUser`` without one).

    Uses the session engine and ``django.contrib.auth.get_user``, exactly as
    ``AuthenticationMiddleware`` does (so a session invalidated by a password change gives
    the anonymous user). Runs in a worker thread: it queries the session store.
    """
    # Models need the app registry, which a server embedded without a Django project never
    # has (and then it serves no calls), so this import waits until a call runs.
    from django.contrib.auth.models import AnonymousUser

    _cookie, engine = conf.session_settings()
    if engine is None or not session_key:
        return AnonymousUser()
    request = HttpRequest()
    request.session = import_module(engine).SessionStore(session_key)
    return get_user(request)


class CallRunner:
    """A thread pool for router calls; the event loop never waits on the database."""

    def __init__(self, threads: int, handler: CallHandler | None = None) -> None:
        self._handler: CallHandler = import_string(ROUTER_ENTRY) if handler is None else handler
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="rtbridge-call")

    async def run(
        self,
        user: Any,
        session_key: str | None,
        route: str,
        verb: str,
        args: dict[str, Any],
        socket_id: str,
    ) -> tuple[Any, int, str]:
        """Run one call; return ``(user, status, body as JSON text)``.

        ``user`` is the connection's user when already known, else ``None`` (it is loaded
        from ``session_key`` in the worker thread and returned for the next calls).
        """

        def call() -> tuple[Any, int, str]:
            # The same discipline as Django's request_started/request_finished: a thread
            # reused by many calls must not keep a broken or expired database connection.
            close_old_connections()
            try:
                caller = load_user(session_key) if user is None else user
                try:
                    status, body = self._handler(
                        route, verb, args, user=caller, socket_id=socket_id
                    )
                except Exception as exc:
                    # Over HTTP Django would answer 500; here the socket must stay usable.
                    logger.exception("rtbridge: socket call %s.%s failed", route, verb)
                    status, body = 500, failure_body(route, verb, exc)
                return caller, status, encode_json(body)
            finally:
                close_old_connections()

        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def shutdown(self) -> None:
        """Stop the threads (calls still queued are cancelled)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
