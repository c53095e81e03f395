"""``BaseBackend``: the contract every transport implements (one required method, ``publish``)."""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Iterable
from types import ModuleType, TracebackType
from typing import Any, ClassVar

from asgiref.sync import sync_to_async

from ..exceptions import ImproperlyConfigured, NotSupported, PublishError
from ..history import HistoryStore, Position, Replay
from ..messages import Message
from ..tokens import Grant, sign_subscription

__all__ = ["BaseBackend", "SelfHostedAuthMixin", "import_sdk", "self_hosted_auth_response"]

logger = logging.getLogger("rtbridge.backends")


def import_sdk(module: str, extra: str, *, backend: str) -> ModuleType:
    """Import a vendor SDK, or raise ``ImproperlyConfigured`` naming the pip extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"The {backend} backend needs the {module!r} package, which is not installed "
            f"({exc}). Install it with: pip install 'rtbridge[{extra}]'"
        ) from exc


class BaseBackend:
    """Deliver messages to one transport.

    Subclasses implement :meth:`publish`; everything else has a default built on it.
    Construction takes the backend's keyword options (``RTBRIDGE_OPTIONS``) and does no I/O.
    Subclasses take their own options as keyword-only arguments and pass the rest up, so an
    unknown option always ends here and raises ``ImproperlyConfigured``.
    """

    #: Short name used by ``RTBRIDGE_BACKEND`` and sent to the JS client.
    alias: ClassVar[str] = "custom"
    #: Largest JSON payload (bytes) the transport accepts; ``None`` for no limit. A backend
    #: whose envelope grows with positions lowers it on the instance (see ``use_history``).
    max_payload_bytes: int | None = None
    #: Options without a default; ``checks`` reports those missing from ``RTBRIDGE_OPTIONS``.
    required_options: ClassVar[tuple[str, ...]] = ()
    #: ``(module, pip extra)`` of the vendor SDK, checked by ``check_sdk`` and system checks.
    sdk: ClassVar[tuple[str, str] | None] = None
    #: Whether Django assigns this transport's positions and keeps its history (the hosted
    #: backends): ``load_backend`` then hands it the store ``RTBRIDGE_HISTORY`` names.
    keeps_history: ClassVar[bool] = False

    def __init__(self, *, fail_silently: bool = False, **unknown: Any) -> None:
        if unknown:
            name = type(self).__name__
            raise ImproperlyConfigured(
                f"{name} got unknown option(s) {', '.join(sorted(map(repr, unknown)))} in "
                f"RTBRIDGE_OPTIONS; {name} accepts: {', '.join(self.option_names()) or 'none'}."
            )
        self.fail_silently = bool(fail_silently)
        #: Messages dropped because delivery failed while ``fail_silently`` was on.
        self.failed_count = 0

    @classmethod
    def option_names(cls) -> list[str]:
        """Return the keyword options the backend's constructor accepts."""
        names: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            for param in inspect.signature(init).parameters.values():
                if param.kind is param.KEYWORD_ONLY and param.name not in names:
                    names.append(param.name)
        return sorted(names)

    @classmethod
    def check_sdk(cls) -> None:
        """Raise ``ImproperlyConfigured`` if the vendor SDK this backend needs is missing."""
        if cls.sdk is not None:
            import_sdk(cls.sdk[0], cls.sdk[1], backend=cls.alias)

    # The contract -------------------------------------------------------------------------

    def check_message(self, message: Message) -> None:
        """Raise ``InvalidMessage`` (e.g. ``PayloadTooLarge``) if this transport can never
        deliver ``message``; no I/O. The default checks ``max_payload_bytes``; transports
        with stricter rules (how the vendor's SDK encodes it, reserved names) add theirs.
        The model mixin calls it to choose a ``refetch`` event over a message that would fail.
        """
        if self.max_payload_bytes is not None:
            message.check_size(self.max_payload_bytes)

    def publish(self, message: Message) -> None:
        """Deliver ``message``, or raise ``PublishError``."""
        raise NotImplementedError(f"{type(self).__name__} must implement publish(message)")

    def publish_many(self, messages: Iterable[Message]) -> None:
        """Deliver several messages in order; transports override this to batch them."""
        for message in messages:
            self.publish(message)

    async def apublish(self, message: Message) -> None:
        """Deliver ``message`` without blocking the event loop (runs ``publish`` in a thread)."""
        await sync_to_async(self.publish, thread_sensitive=False)(message)

    async def apublish_many(self, messages: Iterable[Message]) -> None:
        """Deliver several messages without blocking the event loop."""
        await sync_to_async(self.publish_many, thread_sensitive=False)(list(messages))

    def open(self) -> None:
        """Acquire connections ahead of the first publish (optional; publish opens lazily)."""

    def close(self) -> None:
        """Release connections; the backend may be opened again afterwards."""

    def flush(self, timeout: float | None = None) -> None:
        """Wait until queued messages are sent (for backends that queue; no-op otherwise)."""

    def client_config(self) -> dict[str, Any]:
        """Return what the JavaScript client needs to connect: public values only, no secrets."""
        return {"backend": self.alias}

    def auth_response(self, socket_id: str, grant: Grant) -> dict[str, Any]:
        """Return the auth endpoint's answer for an authorized subscription.

        Each transport answers in the form its client SDK expects (a Pusher signature, a
        PubNub or Firebase token, the rtbridge server's signed token), so there is no default:
        a backend for protected channels overrides this, or inherits
        :class:`SelfHostedAuthMixin` when it delivers through the rtbridge server.
        """
        name = type(self).__name__
        raise NotSupported(
            f"{name} cannot authorize protected channels: it does not implement "
            f"auth_response(socket_id, grant). Override it in {name} to return what the "
            "transport's client expects, or inherit rtbridge.backends.base.SelfHostedAuthMixin "
            "if it delivers through the rtbridge server."
        )

    def use_history(self, store: HistoryStore | None) -> None:
        """Assign positions and keep history through ``store`` (None: history off).

        Only for backends with ``keeps_history``; the rtbridge server transports assign
        positions themselves (in Redis, or in process).
        """
        raise NotSupported(
            f"{type(self).__name__} does not keep history in Django (keeps_history is False)."
        )

    def read_history(self, channel: str, since: Position | None) -> Replay:
        """Return what a client at ``since`` missed on ``channel`` (the history endpoint).

        Hosted backends answer from their history store; the rtbridge server transports
        resume on the socket instead (subscribe with ``since``, docs/protocol.md).
        """
        raise NotSupported(
            f"{type(self).__name__} has no history endpoint: clients of the rtbridge server "
            "resume on their socket (subscribe with 'since'); the endpoint serves the hosted "
            "backends (pusher, pubnub, firebase)."
        )

    def revoke(self, user_id: str, channel: str) -> None:
        """End ``user_id``'s live subscriptions to ``channel`` and refuse its older tokens.

        The rtbridge server backends (``local``, ``redis``) implement this; hosted transports
        cannot end a single subscription, so their grants simply expire (docs/auth.md).
        """
        raise NotSupported(
            f"{type(self).__name__} cannot revoke a live subscription; its authorizations "
            "expire by themselves (see docs/auth.md). Revocation needs the rtbridge server "
            "('local' or 'redis' backend)."
        )

    # Delivery with fail_silently ----------------------------------------------------------

    def send(self, messages: list[Message]) -> None:
        """Deliver messages, honouring ``fail_silently`` (used by ``rtbridge.publish``)."""
        try:
            if len(messages) == 1:
                self.publish(messages[0])
            else:
                self.publish_many(messages)
        except PublishError as exc:
            self._handle_failure(exc, messages)

    async def asend(self, messages: list[Message]) -> None:
        """Deliver messages from async code, honouring ``fail_silently``."""
        try:
            if len(messages) == 1:
                await self.apublish(messages[0])
            else:
                await self.apublish_many(messages)
        except PublishError as exc:
            self._handle_failure(exc, messages)

    def _handle_failure(self, exc: PublishError, messages: list[Message]) -> None:
        if not self.fail_silently:
            raise exc
        self.failed_count += len(messages)
        logger.warning(
            "rtbridge: %s dropped %d message(s) (fail_silently=True): %s",
            type(self).__name__,
            len(messages),
            exc,
        )

    def __enter__(self) -> BaseBackend:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias={self.alias!r}>"


def self_hosted_auth_response(socket_id: str, grant: Grant) -> dict[str, Any]:
    """Return the rtbridge server's auth answer: ``{"auth": <signed token>}``.

    Presence channels add ``"channel_data"`` (the member), which the client shows as itself.
    """
    answer: dict[str, Any] = {"auth": sign_subscription(socket_id, grant)}
    if grant.member is not None:
        answer["channel_data"] = grant.member
    return answer


class SelfHostedAuthMixin:
    """Answer the auth endpoint with the rtbridge server's signed token.

    For backends whose messages reach browsers through the rtbridge server (``local``,
    ``redis``) and those standing in for it (``locmem``, ``dummy``, ``console``). List it
    before the base class: ``class MyBackend(SelfHostedAuthMixin, BaseBackend)``.
    """

    def auth_response(self, socket_id: str, grant: Grant) -> dict[str, Any]:
        """Return ``{"auth": <signed token>}``, plus ``"channel_data"`` on presence channels."""
        return self_hosted_auth_response(socket_id, grant)
