"""``pubnub``: publish through PubNub, one request per channel, concurrently, in the background."""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from django.core.exceptions import ImproperlyConfigured

from ..channel_names import PRESENCE_PREFIX, PRIVATE_PREFIX, encode_for_pubnub, is_protected
from ..exceptions import (
    InvalidChannelName,
    NotSupported,
    PayloadRefused,
    PayloadTooLarge,
    PublishError,
)
from ..history import Position, Positions
from ..messages import Message
from ..tokens import Grant
from .base import import_sdk
from .dispatch import Call, DispatchingBackend
from .grants import GrantLedger

__all__ = ["PubNubBackend"]

#: PubNub accepts 32 KiB per message "including the escaped character count and the channel
#: name" (PubNub docs, Publish: message size), counted as the SDK sends it (``sdk_message_size``).
PUBNUB_MESSAGE_LIMIT = 32768
#: Room for what the dispatcher adds to the envelope when it sends (the continuity position,
#: ``"offset": <int>, "epoch": "<token>"``), which ``check_message`` cannot see yet.
SEND_TIME_ALLOWANCE = 64
#: The smallest envelope around ``data``: ``{"event": "e", "data": , "exclude": null}``.
MIN_ENVELOPE_BYTES = 40
#: Access Manager accepts token lifetimes from 1 minute to 30 days.
MAX_TOKEN_TTL_MINUTES = 43200
#: PubNub delivers presence events of ``<channel>`` on ``<channel>-pnpres``.
PRESENCE_SUFFIX = "-pnpres"


def public_channels_pattern(prefixes: Iterable[str] = (PRIVATE_PREFIX, PRESENCE_PREFIX)) -> str:
    """Return an RE2 pattern matching every channel name that starts with none of ``prefixes``.

    Access Manager's patterns are RE2 (PubNub docs, "Grant, change, and revoke permissions"),
    which has no lookahead, so the pattern spells the complement out: at each character of a
    prefix, either the name ends, or it goes on with another character, or with this one.
    """
    trie: dict[str, Any] = {}
    for prefix in prefixes:
        node = trie
        for char in prefix:
            node = node.setdefault(char, {})
        node[""] = {}  # a forbidden prefix ends here

    def allowed(node: dict[str, Any]) -> str | None:
        if "" in node:
            return None
        children = sorted(node)
        alternatives = ["$", f"[^{''.join(re.escape(c) for c in children)}].*"]
        for char in children:
            rest = allowed(node[char])
            if rest is not None:
                alternatives.append(re.escape(char) + rest)
        return f"(?:{'|'.join(alternatives)})"

    return "^" + (allowed(trie) or "$")


#: Read on every public channel, in every token: with Access Manager on, PubNub refuses a
#: channel (and with it the whole multiplexed subscribe) for which the token grants nothing.
PUBLIC_CHANNELS_PATTERN = public_channels_pattern()


def sdk_message_size(body: Any, channel: str) -> int:
    """Return the bytes PubNub counts when the Python SDK publishes ``body`` on ``channel``.

    The SDK sends ``json.dumps(body)`` with the standard library's defaults (``pubnub/utils.py``
    ``write_value_as_string``): non-ASCII characters as ``\\uXXXX`` escapes (6 bytes for a
    CJK character, 12 for an emoji) and ``", "``/``": "`` separators; with POST that is the
    body, as it is, and the channel is URL-encoded into the path (``url_encode``).
    """
    return len(json.dumps(body)) + len(quote(channel, safe="~"))


class PubNubBackend(DispatchingBackend):
    """Publish with the official ``pubnub`` SDK.

    PubNub publishes to one channel per request, so a message on N channels is N requests; a
    batch's requests run ``concurrency`` at a time. Each PubNub message is
    ``{"event": <event>, "data": <data>, "exclude": <socket id or null>}`` (plus ``"offset"``
    and ``"epoch"`` with history on, see :func:`_envelope`), sent with POST so the size limit
    is not eaten by URL encoding. ``max_payload_bytes`` is a first, cheap bound on the compact
    JSON; :meth:`check_message` then measures what the SDK really sends, the position included
    (``SEND_TIME_ALLOWANCE``), so ``position_bytes`` stays 0 here.
    """

    alias = "pubnub"
    max_payload_bytes = PUBNUB_MESSAGE_LIMIT - MIN_ENVELOPE_BYTES
    keeps_history = True
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

    def check_message(self, message: Message) -> None:
        """Refuse ``-pnpres`` channels and messages PubNub would refuse as too large, up front.

        The size is :func:`sdk_message_size` of the envelope on the longest channel name, plus
        ``SEND_TIME_ALLOWANCE``, against PubNub's 32 KiB: ASCII-escaped non-Latin text takes
        2 to 3 times its UTF-8 size there, so the compact size alone lets messages through that
        PubNub answers with 400 "Message Too Large".
        """
        super().check_message(message)
        channels = [encode_for_pubnub(name) for name in message.channels]
        for logical, channel in zip(message.channels, channels, strict=True):
            _refuse_presence_suffix(logical, channel)
        longest = max(len(quote(channel, safe="~")) for channel in channels)
        # Fast path: an escape is at most 12 bytes per character (an emoji's surrogate pair).
        if len(message.payload) * 12 + 512 + longest <= PUBNUB_MESSAGE_LIMIT:
            return
        body = {
            "event": message.event,
            "data": json.loads(message.payload),
            "exclude": message.exclude,
        }
        size = len(json.dumps(body)) + longest + SEND_TIME_ALLOWANCE
        if size > PUBNUB_MESSAGE_LIMIT:
            raise PayloadTooLarge(
                f"Data for event {message.event!r} on {', '.join(message.channels)} is {size} "
                f"bytes as PubNub counts it (the SDK's ASCII-escaped JSON of the envelope, the "
                f"channel name and {SEND_TIME_ALLOWANCE} bytes for the position), over PubNub's "
                f"{PUBNUB_MESSAGE_LIMIT}; its compact JSON is {message.size} bytes. Publish less "
                "(an id the client can fetch).",
                size=size,
                limit=PUBNUB_MESSAGE_LIMIT,
            )

    def build_calls(
        self, messages: list[Message], positions: Positions | None = None
    ) -> list[Call]:
        """Return one call per channel that publishes that channel's messages in order.

        Channels run concurrently; within a channel, publishes go one after another so
        subscribers see them in publish order.
        """
        per_channel: dict[str, list[dict[str, Any]]] = {}
        for index, message in enumerate(messages):
            data = json.loads(message.payload)
            for name in message.channels:
                position = positions[index].get(name) if positions is not None else None
                body = _envelope(message, data, position)
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
        (``authorized_uuid``) and grants ``read`` on every public channel (the pattern
        :data:`PUBLIC_CHANNELS_PATTERN`: with Access Manager on, PubNub wants a token for every
        channel), ``read`` on every protected channel this connection was granted within
        ``token_ttl`` (PubNub keeps one token per client, so each new token must cover the
        earlier channels too), ``read`` on their ``-pnpres`` channels (presence), and ``write``
        only with ``client_whispers=True``. A page asks for a public channel to get its first
        token. Presence channels add ``"channel_data"`` (the member). Without ``secret_key``
        there is no Access Manager and no token: PubNub then lets anyone with the subscribe
        key read every channel.
        """
        channel = encode_for_pubnub(grant.channel)
        _refuse_presence_suffix(grant.channel, channel)
        answer: dict[str, Any] = {"channel": channel}
        if grant.member is not None:
            answer["channel_data"] = grant.member
        if not self.secret_key:
            return answer
        if is_protected(grant.channel):
            granted = self.grants.add(grant.user_id, socket_id, channel)
        else:
            granted = self.grants.current(grant.user_id, socket_id)
        token = self.grant_token(socket_id, list(granted), user_id=grant.user_id)
        self.grants.record_token(grant.user_id, token)
        answer["token"] = token
        return answer

    def grant_token(
        self, socket_id: str, channels: list[str], *, user_id: str | None = None
    ) -> str:
        """Ask Access Manager for a token letting ``socket_id`` read ``channels`` (encoded).

        Public channels are always included, through :data:`PUBLIC_CHANNELS_PATTERN`.
        """
        from pubnub.models.consumer.v3.channel import Channel

        resources = [Channel.pattern(PUBLIC_CHANNELS_PATTERN).read()]
        for name in channels:
            resource = Channel.id(name).read()
            if self.client_whispers and name.startswith(("private-", PRESENCE_PREFIX)):
                resource = resource.write()
            resources.append(resource)
            if name.startswith(PRESENCE_PREFIX):
                resources.append(Channel.id(f"{name}{PRESENCE_SUFFIX}").read())
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
            named = ", ".join(channels) or "the public channels"
            raise PublishError(
                f"PubNub Access Manager refused a token for {named}: {exc}",
                status=exc.status,
                retryable=exc.retryable,
            ) from exc
        return str(envelope.result.token)  # type: ignore[attr-defined]

    def revoke(self, user_id: str, channel: str) -> None:
        """Take ``channel`` from ``user_id``'s grants and revoke every token the user holds.

        Needs ``secret_key`` and "Revoke v3 Token" enabled on the keyset. The user's pages are
        refused (403) at their next subscribe request, ask the auth endpoint again, and get a
        new token from the rule as it decides now: without ``channel`` if the rule no longer
        grants it. A subscribe long-poll already open is answered as usual, so at most the
        messages that end it (or PubNub's 280-second poll timeout) pass before the cut.
        """
        if not self.secret_key:
            raise NotSupported(
                f"PubNubBackend cannot revoke {channel!r} for user {user_id!r} without "
                "secret_key: without Access Manager every page may read every channel. Set "
                "secret_key (and enable Access Manager on the keyset)."
            )
        encoded = encode_for_pubnub(channel)
        for token in self.grants.revoke(user_id, encoded):
            try:
                _call_pubnub(self.client.revoke_token(token).sync)
            except PublishError as exc:
                if exc.status == 400 and "expired" in str(exc).lower():
                    continue  # nothing left to revoke
                raise PublishError(
                    f"PubNub Access Manager could not revoke a token of user {user_id!r}: "
                    f"{exc}. Enable 'Revoke v3 Token' on the keyset.",
                    status=exc.status,
                    retryable=exc.retryable,
                ) from exc

    def client_config(self) -> dict[str, Any]:
        """Return what the pubnub JS SDK needs to subscribe (never the secret key).

        ``accessManager`` says that every subscribe needs a token (``secret_key`` set). The
        publish key is included only with ``client_whispers=True`` (pages publish their
        whispers themselves).
        """
        config: dict[str, Any] = {"backend": self.alias, "subscribeKey": self.subscribe_key}
        config.update(self.history_config())
        if self.secret_key:
            # Access Manager is on: pages need a token before their first subscribe.
            config["accessManager"] = True
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


def _envelope(message: Message, data: Any, position: Position | None) -> dict[str, Any]:
    """Return the PubNub message: ``{"event", "data", "exclude"}``, with the position if any."""
    body: dict[str, Any] = {"event": message.event, "data": data, "exclude": message.exclude}
    if position is not None:
        body["offset"] = position.offset
        body["epoch"] = position.epoch
    return body


def _close_http_client(client: Any) -> None:
    """Close the HTTP client (and watchdog thread) of a ``PubNub`` instance.

    Through the public ``get_request_handler()`` (pubnub >= 10, whose default httpx handler
    has ``close()`` from 10.7, the lowest version rtbridge supports). The guard
    test in tests/backends/test_pubnub.py fails if the installed SDK stops offering this.
    """
    get_handler = getattr(client, "get_request_handler", None)
    handler = get_handler() if get_handler is not None else None
    close = getattr(handler, "close", None)
    if close is not None:
        close()


def _refuse_presence_suffix(logical: str, channel: str) -> None:
    """Raise ``InvalidChannelName`` for a name PubNub reads as a presence channel."""
    if channel.endswith(PRESENCE_SUFFIX):
        raise InvalidChannelName(
            f"Channel {logical!r} ends with {PRESENCE_SUFFIX!r}, which PubNub reserves for the "
            "presence events of the channel before it; rename it (e.g. end it with '-presence')."
        )


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
        if status in (400, 413) and "message too large" in str(exc).lower():
            # PubNub answers 400 [0, "Message Too Large", ...]: no retry will make it fit.
            raise PayloadRefused(
                f"PubNub refused the message as too large ({status}: {exc}); it accepts "
                f"{PUBNUB_MESSAGE_LIMIT} bytes as the SDK sends them. Publish less.",
                size=0,
                limit=PUBNUB_MESSAGE_LIMIT,
                status=status,
            ) from exc
        hint = ""
        if status in (400, 403):
            hint = " Check publish_key, subscribe_key and secret_key (and PubNub Access Manager)."
        raise PublishError(
            f"PubNub answered {status}: {exc}.{hint}", status=status, retryable=retryable
        ) from exc
