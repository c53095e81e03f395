"""``pubnub``: publish through PubNub, one request per channel, concurrently, in the background."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..channel_names import PRESENCE_PREFIX, encode_for_pubnub
from ..exceptions import NotSupported, PublishError
from ..messages import Message
from ..tokens import Grant
from .base import import_sdk
from .dispatch import Call, DispatchingBackend
from .grants import GrantLedger

__all__ = ["PubNubBackend"]

#: PubNub accepts 32 KiB per message, envelope included; ``data`` gets the rest. The envelope
#: (``{"event":…,"data":…,"exclude":…}``) is at most ~220 bytes; 512 leaves a margin.
PUBNUB_MESSAGE_LIMIT = 32768
ENVELOPE_ALLOWANCE = 512
#: Access Manager accepts token lifetimes from 1 minute to 30 days.
MAX_TOKEN_TTL_MINUTES = 43200


class PubNubBackend(DispatchingBackend):
    """Publish with the official ``pubnub`` SDK.

    PubNub publishes to one channel per request, so a message on N channels is N requests; a
    batch's requests run ``concurrency`` at a time. Each PubNub message is
    ``{"event": <event>, "data": <data>, "exclude": <socket id or null>}``, sent with POST so the
    size limit is not eaten by URL encoding.
    """

    alias = "pubnub"
    max_payload_bytes = PUBNUB_MESSAGE_LIMIT - ENVELOPE_ALLOWANCE
    required_options = ("publish_key", "subscribe_key")
    sdk = ("pubnub", "pubnub")

    def __init__(
        self,
        *,
        publish_key: str = "",
        subscribe_key: str = "",
        secret_key: str | None = None,
        user_id: str = "rtbridge-server",
        origin: str | None = None,
        ssl: bool = True,
        timeout: float = 5.0,
        concurrency: int = 8,
        token_ttl: int = 60,
        client_whispers: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        keys = (("publish_key", publish_key), ("subscribe_key", subscribe_key))
        missing = [name for name, value in keys if not value]
        if missing:
            raise ImproperlyConfigured(
                f"PubNubBackend needs {', '.join(missing)} in RTBRIDGE_OPTIONS; copy them from "
                "the keyset page of the PubNub admin portal."
            )
        if not isinstance(user_id, str) or not user_id.strip():
            raise ImproperlyConfigured(
                f"PubNubBackend option user_id={user_id!r} is not valid; give a non-empty string "
                "that identifies the server (PubNub requires one)."
            )
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ImproperlyConfigured(
                f"PubNubBackend option timeout={timeout!r} is not valid; give seconds > 0."
            )
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ImproperlyConfigured(
                f"PubNubBackend option concurrency={concurrency!r} is not valid; give the number "
                "of publishes to run at once (>= 1)."
            )
        if (
            not isinstance(token_ttl, int)
            or isinstance(token_ttl, bool)
            or not 1 <= token_ttl <= MAX_TOKEN_TTL_MINUTES
        ):
            raise ImproperlyConfigured(
                f"PubNubBackend option token_ttl={token_ttl!r} is not valid; give the lifetime "
                f"of Access Manager tokens in minutes (1 to {MAX_TOKEN_TTL_MINUTES})."
            )
        self.token_ttl = token_ttl
        self.client_whispers = bool(client_whispers)
        self.grants = GrantLedger(f"pubnub:{subscribe_key}", token_ttl * 60)
        self.publish_key = publish_key
        self.subscribe_key = subscribe_key
        self.secret_key = secret_key
        self.user_id = user_id
        self.origin = origin
        self.ssl = bool(ssl)
        self.timeout = timeout
        self.dispatcher.concurrency = concurrency
        self._client: Any = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        """Return the ``pubnub.pubnub.PubNub`` client, built on first use (no I/O)."""
        with self._client_lock:  # the sender pool's threads all ask at once
            if self._client is None:
                self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        import_sdk("pubnub", "pubnub", backend=self.alias)
        from pubnub.pnconfiguration import PNConfiguration
        from pubnub.pubnub import PubNub

        config = PNConfiguration()
        config.publish_key = self.publish_key
        config.subscribe_key = self.subscribe_key
        if self.secret_key:
            config.secret_key = self.secret_key
        config.user_id = self.user_id
        if self.origin:
            config.origin = self.origin
        config.ssl = self.ssl
        # The SDK insists on whole seconds.
        config.connect_timeout = math.ceil(self.timeout)
        config.non_subscribe_request_timeout = math.ceil(self.timeout)
        # The server only publishes; without this the SDK starts a subscribe worker thread.
        config.enable_subscribe = False
        # Lock the configuration (the SDK warns that mutable configs are deprecated).
        config.disable_config_locking = False
        return PubNub(config)

    def build_calls(self, messages: list[Message]) -> list[Call]:
        """Return one call per channel that publishes that channel's messages in order.

        Channels run concurrently; within a channel, publishes go one after another so
        subscribers see them in publish order.
        """
        per_channel: dict[str, list[dict[str, Any]]] = {}
        for message in messages:
            body = {
                "event": message.event,
                "data": json.loads(message.payload),
                "exclude": message.exclude,
            }
            for name in message.channels:
                per_channel.setdefault(encode_for_pubnub(name), []).append(body)
        return [self._channel_call(channel, bodies) for channel, bodies in per_channel.items()]

    def _channel_call(self, channel: str, bodies: list[dict[str, Any]]) -> Call:
        sent = 0

        def send() -> object:
            # A retry resumes after the last publish that succeeded: no duplicates, no gaps.
            nonlocal sent
            while sent < len(bodies):
                _call_pubnub(self._publish_request(channel, bodies[sent]))
                sent += 1
            return None

        return Call(
            send,
            messages=len(bodies),
            label=f"publish({channel}, {len(bodies)} messages)",
            unsent=lambda: len(bodies) - sent,
        )

    def _publish_request(self, channel: str, body: dict[str, Any]) -> Callable[[], object]:
        return lambda: self.client.publish().channel(channel).message(body).use_post(True).sync()

    def auth_response(self, socket_id: str, grant: Grant) -> dict[str, Any]:
        """Return ``{"channel", "token"}``: an Access Manager v3 token for this connection.

        ``socket_id`` is the page's PubNub user id; the token is bound to it
        (``authorized_uuid``) and grants ``read`` on every protected channel this connection
        was granted within ``token_ttl`` (PubNub keeps one token per client, so each new
        token must cover the earlier channels too), ``read`` on their ``-pnpres`` channels
        (presence), and ``write`` only with ``client_whispers=True``. Presence channels add
        ``"channel_data"`` (the member). Without ``secret_key`` there is no Access Manager and
        no token: PubNub then lets anyone with the subscribe key read every channel.
        """
        channel = encode_for_pubnub(grant.channel)
        answer: dict[str, Any] = {"channel": channel}
        if grant.member is not None:
            answer["channel_data"] = grant.member
        if not self.secret_key:
            return answer
        granted = self.grants.add(grant.user_id, socket_id, channel)
        answer["token"] = self.grant_token(socket_id, list(granted), user_id=grant.user_id)
        return answer

    def grant_token(
        self, socket_id: str, channels: list[str], *, user_id: str | None = None
    ) -> str:
        """Ask Access Manager for a token letting ``socket_id`` read ``channels`` (encoded)."""
        from pubnub.models.consumer.v3.channel import Channel

        resources = []
        for name in channels:
            resource = Channel.id(name).read()
            if self.client_whispers and name.startswith(("private-", PRESENCE_PREFIX)):
                resource = resource.write()
            resources.append(resource)
            if name.startswith(PRESENCE_PREFIX):
                resources.append(Channel.id(f"{name}-pnpres").read())
        request = (
            self.client.grant_token()
            .channels(resources)
            .ttl(self.token_ttl)
            .authorized_uuid(socket_id)
            .meta({"user": user_id})
        )
        try:
            envelope = _call_pubnub(request.sync)
        except PublishError as exc:
            raise PublishError(
                f"PubNub Access Manager refused a token for {', '.join(channels)}: {exc}",
                status=exc.status,
                retryable=exc.retryable,
            ) from exc
        return str(envelope.result.token)  # type: ignore[attr-defined]

    def revoke(self, user_id: str, channel: str) -> None:
        """Refuse: an Access Manager token cannot lose one channel; it lasts ``token_ttl``."""
        raise NotSupported(
            f"PubNubBackend cannot revoke {channel!r} for user {user_id!r}: an Access Manager "
            f"token cannot lose one channel and stays valid for token_ttl={self.token_ttl} "
            "minutes. Lower token_ttl, stop granting the channel in your rule, or use the "
            "rtbridge server ('local' or 'redis'), which revokes live subscriptions."
        )

    def client_config(self) -> dict[str, Any]:
        """Return what the pubnub JS SDK needs to subscribe (never the secret key).

        The publish key is included only with ``client_whispers=True`` (pages publish their
        whispers themselves).
        """
        config: dict[str, Any] = {"backend": self.alias, "subscribeKey": self.subscribe_key}
        if self.client_whispers:
            config["publishKey"] = self.publish_key
        if self.origin:
            config["origin"] = self.origin
        if not self.ssl:
            config["ssl"] = False
        return config

    def close(self) -> None:
        """Flush, stop the dispatcher and close the SDK's HTTP client."""
        super().close()
        client, self._client = self._client, None
        if client is not None:
            _close_http_client(client)


def _close_http_client(client: Any) -> None:
    """Close the HTTP client (and watchdog thread) of a ``PubNub`` instance.

    Through the public ``get_request_handler()`` (pubnub >= 10, whose default httpx handler
    has ``close()``); the requests-based handler of pubnub 9 holds nothing to close. The guard
    test in tests/backends/test_pubnub.py fails if the installed SDK stops offering this.
    """
    get_handler = getattr(client, "get_request_handler", None)
    handler = get_handler() if get_handler is not None else None
    close = getattr(handler, "close", None)
    if close is not None:
        close()


def _call_pubnub(request: Any) -> object:
    """Run one SDK request, mapping its errors to ``PublishError`` (5xx/timeouts retryable)."""
    exceptions = import_sdk("pubnub.exceptions", "pubnub", backend="pubnub")
    try:
        return request()
    except exceptions.PubNubException as exc:
        status = int(exc.get_status_code() or 0) or None
        if status is None:
            # No HTTP answer: connection refused, timeout, DNS. Worth another try.
            raise PublishError(f"PubNub unreachable: {exc}", retryable=True) from exc
        retryable = status >= 500 or status == 429
        hint = ""
        if status in (400, 403):
            hint = " Check publish_key, subscribe_key and secret_key (and PubNub Access Manager)."
        raise PublishError(
            f"PubNub answered {status}: {exc}.{hint}", status=status, retryable=retryable
        ) from exc
