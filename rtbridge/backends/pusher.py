"""``pusher``: publish through the Pusher Channels HTTP API (or soketi), off the request path."""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from ..channel_names import encode_for_pusher, is_protected
from ..exceptions import InvalidChannelName, InvalidMessage, PayloadRefused, PublishError
from ..history import EPOCH_LENGTH, MAX_OFFSET, Position, Positions
from ..messages import Message
from ..tokens import Grant
from .base import import_sdk
from .dispatch import Call, DispatchingBackend

__all__ = ["PusherBackend"]

#: Channels one ``trigger`` call may name, and events one ``trigger_batch`` call may carry.
MAX_CHANNELS_PER_TRIGGER = 100
MAX_EVENTS_PER_BATCH = 10
_SOCKET_ID_RE = re.compile(r"\A\d+\.\d+\Z")
#: Prefixes Pusher gives a meaning rtbridge does not use (cache channels, end-to-end encryption).
RESERVED_PREFIXES = ("cache-", "private-cache-", "presence-cache-", "private-encrypted-")


def _refuse_reserved(logical: str, channel: str) -> None:
    """Raise ``InvalidChannelName`` for a name Pusher reads as a cache or encrypted channel."""
    if channel.startswith(RESERVED_PREFIXES):
        raise InvalidChannelName(
            f"Channel {logical!r} starts with a prefix Pusher reserves "
            f"({', '.join(RESERVED_PREFIXES)}: cache channels replay their last event, encrypted "
            "ones need client-side keys, which rtbridge does not support); rename it."
        )


def _envelope(message: Message, position: Position | None) -> str:
    """Return the event's ``data``: the payload, or ``{"data", "offset", "epoch"}`` with history.

    Built as text around the payload (encoded once, in ``Message``); epochs are url-safe, so
    they need no escaping.
    """
    if position is None:
        return message.payload
    return f'{{"data":{message.payload},"offset":{position.offset},"epoch":"{position.epoch}"}}'


#: What the position wrapper adds to an event's data, at most (Pusher's 10 KB counts it).
PUSHER_POSITION_BYTES = len(_envelope(Message("x", "x"), Position(MAX_OFFSET, "x" * EPOCH_LENGTH)))
PUSHER_POSITION_BYTES -= len(Message("x", "x").payload)


class PusherBackend(DispatchingBackend):
    """Publish with the official ``pusher`` SDK.

    Messages for fewer than 10 channels become ``trigger_batch`` entries (one per channel, 10
    per request); a message for 10 channels or more is one ``trigger`` per 100 channels. Order is
    kept: requests are sent one after another in publish order. With history on, each event's
    data carries its channel's position (:func:`_envelope`), which differs per channel, so
    every channel is a batch entry of its own.
    """

    alias = "pusher"
    max_payload_bytes = 10240
    keeps_history = True
    position_bytes = PUSHER_POSITION_BYTES
    required_options = ("app_id", "key", "secret")
    sdk = ("pusher", "pusher")

    def __init__(
        self,
        *,
        app_id: str | int = "",
        key: str = "",
        secret: str = "",
        cluster: str | None = None,
        host: str | None = None,
        port: int | None = None,
        ssl: bool = True,
        timeout: float = 5.0,
        ws_host: str | None = None,
        ws_port: int | None = None,
        ca_bundle: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        missing = [n for n, v in (("app_id", app_id), ("key", key), ("secret", secret)) if not v]
        if missing:
            raise ImproperlyConfigured(
                f"PusherBackend needs {', '.join(missing)} in RTBRIDGE_OPTIONS; copy them from "
                "the app's 'App Keys' page (or your soketi app settings)."
            )
        if not str(app_id).isdigit():
            raise ImproperlyConfigured(
                f"PusherBackend option app_id={app_id!r} is not valid; Pusher app ids are numeric."
            )
        if cluster and host:
            raise ImproperlyConfigured(
                f"PusherBackend got cluster={cluster!r} and host={host!r}; give one of them "
                "(cluster for pusher.com, host/port/ssl for a self-hosted Pusher-protocol server)."
            )
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ImproperlyConfigured(
                f"PusherBackend option timeout={timeout!r} is not valid; give seconds > 0."
            )
        if ca_bundle is not None and not (isinstance(ca_bundle, str) and os.path.isfile(ca_bundle)):
            raise ImproperlyConfigured(
                f"PusherBackend option ca_bundle={ca_bundle!r} is not a file; give the path of a "
                "PEM file of the CA certificates to trust for the Pusher API (e.g. your "
                "company's TLS proxy CA), or leave it out for the SDK's bundled CAs."
            )
        #: PEM file of the CAs that verify the API's TLS certificate (None: the SDK's bundle).
        self.ca_bundle = ca_bundle
        self.app_id = str(app_id)
        self.key = key
        self.secret = secret
        self.cluster = cluster
        self.host = host
        self.port = port
        self.ssl = bool(ssl)
        self.timeout = timeout
        self.ws_host = ws_host
        self.ws_port = ws_port
        self._client: Any = None
        self._client_lock = threading.Lock()
        # The HTTP sessions of the SDK's adapters (see _http_adapter), closed by close().
        self._sessions: list[Any] = []

    @property
    def client(self) -> Any:
        """Return the ``pusher.Pusher`` client, built on first use (no I/O)."""
        with self._client_lock:
            if self._client is None:
                self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        pusher = import_sdk("pusher", "pusher", backend=self.alias)
        return pusher.Pusher(
            app_id=self.app_id,
            key=self.key,
            secret=self.secret,
            cluster=self.cluster,
            host=self.host,
            port=self.port,
            ssl=self.ssl,
            timeout=self.timeout,
            backend=self._http_adapter,
        )

    def _http_adapter(self, client: Any, **options: Any) -> Any:
        """Build the SDK's requests adapter and keep its session, so close() can release it.

        ``Pusher(backend=...)`` is the SDK's public hook for its HTTP adapter: it calls it as
        ``backend(client, **options)`` once per internal client. Wrapping the default
        ``pusher.requests.RequestsBackend`` keeps its behaviour and spares reading the SDK's
        private attributes to find the session on close.
        """
        requests_backend = import_sdk("pusher.requests", "pusher", backend=self.alias)
        adapter = requests_backend.RequestsBackend(client, **options)
        if self.ca_bundle is not None and self.ssl:
            # The adapter passes its ``options`` to every ``requests`` call and sets
            # verify=<the SDK's own cacert.pem> there, which wins over REQUESTS_CA_BUNDLE; the
            # configured bundle replaces it (guarded by tests/backends/test_pusher.py).
            adapter.options["verify"] = self.ca_bundle
        self._sessions.append(adapter.session)
        return adapter

    def check_message(self, message: Message) -> None:
        """Check the size and that ``exclude`` is a Pusher socket id (``123.456``)."""
        super().check_message(message)
        for name in message.channels:
            _refuse_reserved(name, encode_for_pusher(name))
        if message.exclude is not None and not _SOCKET_ID_RE.match(message.exclude):
            raise InvalidMessage(
                f"exclude={message.exclude!r} is not a Pusher socket id; Pusher socket ids look "
                "like '123.456' (pusher-js: pusher.connection.socket_id)."
            )

    def build_calls(
        self, messages: list[Message], positions: Positions | None = None
    ) -> list[Call]:
        """Chunk ``messages`` into ``trigger``/``trigger_batch`` requests, in publish order."""
        calls: list[Call] = []
        entries: list[tuple[int, dict[str, str]]] = []  # (message index, batch entry)

        def close_batch() -> None:
            for start in range(0, len(entries), MAX_EVENTS_PER_BATCH):
                chunk = entries[start : start + MAX_EVENTS_PER_BATCH]
                carried = len({index for index, _ in chunk})
                calls.append(self._batch_call([entry for _, entry in chunk], carried))
            entries.clear()

        for index, message in enumerate(messages):
            channels = [encode_for_pusher(name) for name in message.channels]
            # The SDK's trigger() refuses data whose sys.getsizeof() (not its UTF-8 size)
            # exceeds 30720, which a short text with one emoji in it can reach; batches skip it.
            if (
                positions is not None
                or len(channels) < MAX_EVENTS_PER_BATCH
                or sys.getsizeof(message.payload) > 30720
            ):
                for name, channel in zip(message.channels, channels, strict=True):
                    position = positions[index].get(name) if positions is not None else None
                    data = _envelope(message, position)
                    entry = {"channel": channel, "name": message.event, "data": data}
                    if message.exclude:
                        entry["socket_id"] = message.exclude
                    entries.append((index, entry))
                continue
            close_batch()
            for start in range(0, len(channels), MAX_CHANNELS_PER_TRIGGER):
                chunk = channels[start : start + MAX_CHANNELS_PER_TRIGGER]
                calls.append(self._trigger_call(chunk, message))
        close_batch()
        return calls

    def _batch_call(self, entries: list[dict[str, str]], messages: int) -> Call:
        def send() -> object:
            # already_encoded: data is JSON text and channels are validated; it also skips the
            # SDK's size check, which measures sys.getsizeof() and refuses valid 10 KB events.
            return _call_pusher(lambda: self.client.trigger_batch(entries, already_encoded=True))

        # A message split over two batches counts in both: either part failing loses it.
        return Call(send, messages=messages, label=f"trigger_batch({len(entries)} events)")

    def _trigger_call(self, channels: list[str], message: Message) -> Call:
        def send() -> object:
            return _call_pusher(
                lambda: self.client.trigger(
                    channels, message.event, message.payload, socket_id=message.exclude
                )
            )

        # Counted as one message: a trigger either reaches all its channels or none.
        return Call(send, messages=1, label=f"trigger({len(channels)} channels)")

    def auth_response(self, socket_id: str, grant: Grant) -> dict[str, Any]:
        """Return Pusher's channel authorization: ``{"auth": "key:signature"}``.

        Presence channels add ``"channel_data"`` (the JSON text of ``{"user_id", "user_info"}``
        from the grant's member), which Pusher hands to every member; the signature covers it,
        so a client cannot change who it is.
        """
        channel = encode_for_pusher(grant.channel)
        _refuse_reserved(grant.channel, channel)
        if not _SOCKET_ID_RE.match(socket_id):
            raise ValueError(
                f"socket_id={socket_id!r} is not a Pusher socket id; Pusher socket ids look like "
                "'123.456' (pusher-js: pusher.connection.socket_id)."
            )
        if not is_protected(grant.channel):
            # Pusher never asks for a public channel: this is the page signing in as its user
            # (pusher-js signin()), so revoke() can end the user's connections.
            if grant.user_id is None:
                return {}
            signed: dict[str, Any] = self.client.authenticate_user(socket_id, {"id": grant.user_id})
            return signed
        custom_data = None
        if grant.member is not None:
            custom_data = {"user_id": grant.member["id"], "user_info": grant.member["info"]}
        answer: dict[str, Any] = self.client.authenticate(
            channel=channel, socket_id=socket_id, custom_data=custom_data
        )
        return answer

    def revoke(self, user_id: str, channel: str) -> None:
        """End every connection of ``user_id`` (Pusher cannot end one subscription).

        ``terminate_user_connections`` closes the connections signed in as the user (the JS
        client signs each page in, through the auth endpoint, as its Django user), within a
        second; the pages connect again and ask Django for each protected channel, which the
        rule decides as it stands now. Connections that were never signed in (anonymous pages,
        ``user_sign_in=False``) are not reached.
        """
        _call_pusher(lambda: _terminate_user_connections(self.client, str(user_id)))

    def client_config(self) -> dict[str, Any]:
        """Return pusher-js options: the key and where to connect (never the secret)."""
        config: dict[str, Any] = {"backend": self.alias, "key": self.key, "signIn": True}
        config["cluster"] = self.cluster or "mt1"
        config.update(self.history_config())
        if self.host or self.ws_host:
            config["wsHost"] = self.ws_host or self.host
            port = self.ws_port or self.port
            if port:
                config["wsPort"] = port
            config["forceTLS"] = self.ssl
        return config

    def close(self) -> None:
        """Flush, stop the dispatcher and close the SDK's HTTP sessions."""
        super().close()
        with self._client_lock:
            self._client = None
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()


def _terminate_user_connections(client: Any, user_id: str) -> Any:
    """POST the HTTP API's ``/apps/<app_id>/users/<user_id>/terminate_connections``.

    pusher-http-python (3.3.x, the newest) builds this request without the ``/apps/<app_id>``
    prefix its other requests carry (``/users/<id>/terminate_connections``), which Pusher's
    HTTP API reference, the Node SDK and soketi do not serve (soketi answers 404). So the
    request is built here with the SDK's own ``Request`` (signing, body MD5) on the path the
    API documents, and sent through the SDK's HTTP backend, like every other call.
    ``tests/backends/test_pusher.py`` checks the SDK's path, so an SDK that fixes it is noticed.
    """
    from pusher.http import POST, Request
    from pusher.util import validate_user_id

    validate_user_id(user_id)
    pusher_client = getattr(client, "_pusher_client", client)
    request = Request(
        pusher_client,
        POST,
        f"/apps/{pusher_client.app_id}/users/{user_id}/terminate_connections",
        {},
    )
    return pusher_client.http.send_request(request)


_HINTS = {
    400: " The request broke one of Pusher's limits (names, channels per event, batch size).",
    401: " Check the key and secret options.",
    403: " Check app_id and that the app is enabled (and its message quota).",
    404: " Check app_id.",
    413: " The event is larger than the server accepts.",
}


def _status_error(status: int | None, detail: object) -> PublishError:
    """Return the ``PublishError`` for an HTTP error answer (5xx and 429 are retryable)."""
    retryable = status is None or status >= 500 or status == 429
    hint = _HINTS.get(status or 0, "")
    if status == 413:
        return PayloadRefused(
            f"Pusher API answered 413: {detail}.{hint}", size=0, limit=10240, status=413
        )
    return PublishError(
        f"Pusher API answered {status}: {detail}.{hint}", status=status, retryable=retryable
    )


def _call_pusher(request: Callable[[], object]) -> object:
    """Run one SDK request, mapping its errors to ``PublishError`` (5xx/timeouts retryable)."""
    pusher_errors = import_sdk("pusher.errors", "pusher", backend="pusher")
    import requests

    try:
        result = request()
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise PublishError(f"Pusher API unreachable: {exc}", retryable=True) from exc
    except pusher_errors.PusherBadRequest as exc:
        raise _status_error(400, exc) from exc
    except pusher_errors.PusherBadAuth as exc:
        raise _status_error(401, exc) from exc
    except pusher_errors.PusherForbidden as exc:
        raise _status_error(403, exc) from exc
    except pusher_errors.PusherBadStatus as exc:
        # The SDK formats these as "<status>: <body>".
        head, _, body = str(exc).partition(":")
        raise _status_error(int(head) if head.isdigit() else None, body.strip()) from exc
    except ValueError as exc:
        # The SDK validates names and sizes before sending; nothing will make them pass later.
        raise PublishError(f"Pusher SDK refused the request: {exc}") from exc
    # soketi 1.6 sends its CORS headers first, so its errors arrive as HTTP 200 with a body of
    # {"error": ..., "code": <status>}; read the status from there.
    code = result.get("code") if isinstance(result, dict) else None
    if isinstance(code, int) and code >= 400 and "error" in result:  # type: ignore[operator]
        raise _status_error(code, result["error"])  # type: ignore[index]
    return result
