"""``SocketIdMiddleware``: who sent this request, so their own tab is not told twice."""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from .messages import is_socket_id

__all__ = ["SOCKET_ID_HEADER", "SocketIdMiddleware", "sender_socket_id", "to_everyone"]

#: The header the JavaScript client sets on its HTTP calls (``X-RTBridge-Socket-Id``).
SOCKET_ID_HEADER = "HTTP_X_RTBRIDGE_SOCKET_ID"
_sender: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rtbridge_sender_socket_id", default=None
)


def sender_socket_id() -> str | None:
    """Return the socket id of the client that sent the current request, if it said."""
    return _sender.get()


@contextmanager
def sending_as(socket_id: str | None) -> Iterator[None]:
    """Treat code in the block as sent by ``socket_id`` (used by the middleware and tests)."""
    token = _sender.set(socket_id)
    try:
        yield
    finally:
        _sender.reset(token)


@contextmanager
def to_everyone() -> Iterator[None]:
    """Inside the block, model changes reach the sender's own tab too (opt out of exclusion)."""
    with sending_as(None):
        yield


class SocketIdMiddleware:
    """Read ``X-RTBridge-Socket-Id`` and make it the default ``exclude`` of model publishing.

    Add ``"rtbridge.middleware.SocketIdMiddleware"`` to ``MIDDLEWARE``. A malformed header is
    ignored (treated as absent): it only ever narrows who receives a message.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)

    @staticmethod
    def _socket_id(request: HttpRequest) -> str | None:
        value = request.META.get(SOCKET_ID_HEADER)
        return value if is_socket_id(value) else None

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self._is_async:
            return self.__acall__(request)
        with sending_as(self._socket_id(request)):
            response: HttpResponse = self.get_response(request)
            return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        with sending_as(self._socket_id(request)):
            response: HttpResponse = await self.get_response(request)
            return response
