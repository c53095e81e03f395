"""The exceptions rtbridge raises."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

__all__ = [
    "ImproperlyConfigured",
    "InvalidChannelName",
    "InvalidEventName",
    "InvalidMessage",
    "InvalidPosition",
    "InvalidToken",
    "NotSupported",
    "PayloadRefused",
    "PayloadTooLarge",
    "PublishError",
    "RTBridgeError",
    "Refused",
    "RouterError",
    "ServerNotRunning",
]


class RTBridgeError(Exception):
    """Base class of every rtbridge error except configuration problems."""


class InvalidMessage(RTBridgeError, ValueError):
    """A message cannot be published as given (bad name, data or size)."""


class InvalidChannelName(InvalidMessage):
    """A channel name breaks the logical channel-name rules."""


class InvalidEventName(InvalidMessage):
    """An event name breaks the event-name rules."""


class PayloadTooLarge(InvalidMessage):
    """The encoded data is larger than the active backend accepts."""

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class PublishError(RTBridgeError):
    """The transport could not deliver a message.

    ``status`` is the HTTP status (or ``None``), ``retryable`` says whether
    trying again later may succeed (timeouts, 5xx) or not (bad key, 4xx).
    """

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


class ServerNotRunning(PublishError):
    """No rtbridge server runs for this project, so the ``local`` backend cannot deliver.

    Model saves log it once per process (the data is saved; the pages just do not update);
    ``rtbridge.publish()`` raises it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class PayloadRefused(PayloadTooLarge, PublishError):
    """The transport refused a sent message as too large (PubNub 400, Pusher 413): never retried.

    A ``PublishError`` for the dispatcher and a ``PayloadTooLarge`` for callers, so code that
    catches either sees it. ``size`` is the size rtbridge measured, ``limit`` the vendor's.
    """

    def __init__(self, message: str, *, size: int, limit: int, status: int) -> None:
        PayloadTooLarge.__init__(self, message, size=size, limit=limit)
        self.status = status
        self.retryable = False


class NotSupported(RTBridgeError, NotImplementedError):
    """The active backend does not offer this optional feature (auth answers, revocation...)."""


class Refused(RTBridgeError):
    """The user may not subscribe to the channel; ``code`` says why (for the JSON error)."""

    def __init__(self, message: str, code: str = "forbidden") -> None:
        super().__init__(message)
        self.code = code


class InvalidPosition(RTBridgeError, ValueError):
    """A resume position is malformed or impossible (beyond the channel's last offset)."""


class InvalidToken(RTBridgeError):
    """A subscription token is forged, expired, or for another socket or channel."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class RouterError(RTBridgeError):
    """A call that cannot be served: becomes ``{"error": {...}}`` with an HTTP-like status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: Mapping[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = dict(fields) if fields else None

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON error body."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields is not None:
            error["fields"] = self.fields
        return {"error": error}
