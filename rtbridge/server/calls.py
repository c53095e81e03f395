"""Router calls over the socket: run ``rtbridge.routers.call`` in threads, as the session user."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module
from typing import Any

from .. import conf

__all__ = ["CallRunner", "load_user"]

logger = logging.getLogger("rtbridge.server")


def load_user(session_key: str | None) -> Any:
    """Return the user of the Django session ``session_key`` (``AnonymousUser`` without one).

    Uses the session engine and ``django.contrib.auth.get_user``, exactly as
    ``AuthenticationMiddleware`` does (so a session invalidated by a password change gives
    the anonymous user). Runs in a worker thread: it queries the session store.
    """
    from django.contrib.auth.models import AnonymousUser

    _cookie, engine = conf.session_settings()
    if engine is None or not session_key:
        return AnonymousUser()
    from django.contrib.auth import get_user
    from django.http import HttpRequest

    request = HttpRequest()
    request.session = import_module(engine).SessionStore(session_key)
    return get_user(request)


class CallRunner:
    """A thread pool for router calls; the event loop never waits on the database."""

    def __init__(self, threads: int) -> None:
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
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, _call, user, session_key, route, verb, args, socket_id
        )

    def shutdown(self) -> None:
        """Stop the threads (calls still queued are cancelled)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _call(
    user: Any,
    session_key: str | None,
    route: str,
    verb: str,
    args: dict[str, Any],
    socket_id: str,
) -> tuple[Any, int, str]:
    from django.db import close_old_connections

    from ..messages import encode_json
    from ..routers import call, server_error

    # The same discipline as Django's request_started/request_finished: a thread reused by
    # many calls must not keep a broken or expired database connection.
    close_old_connections()
    try:
        if user is None:
            user = load_user(session_key)
        try:
            status, body = call(route, verb, args, user=user, socket_id=socket_id)
        except Exception as exc:
            # Over HTTP Django would answer 500; here the socket must stay usable.
            logger.exception("rtbridge: socket call %s.%s failed", route, verb)
            status = 500
            body = server_error(route, verb, exc)
        return user, status, encode_json(body)
    finally:
        close_old_connections()
