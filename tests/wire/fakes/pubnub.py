"""A loopback PubNub: the REST subset the Python and JS SDKs use, with subscribers routed live.

Publish (GET with the message in the path, or POST with it in the body), subscribe long-polls
with timetokens, heartbeat, leave, ``here_now``, ``set_state``, ``/time/0``, Access Manager v3
grant and revoke. Rules enforced, as the real service does them:

* Keys: a wrong publish or subscribe key answers 400 ``Invalid Key`` / ``Invalid Subscribe
  Key`` (PubNub REST API reference, Publish and Subscribe).
* Size: a message over 32 KiB answers **400** ``[0, "Message Too Large", "<timetoken>"]``;
  the size counts the message as sent (POST body, or the URL-escaped path segment of a GET)
  plus the URL-escaped channel name ("The maximum message size is 32 KiB. This includes the
  escaped character count and the channel name", PubNub docs, Publish).
* Access Manager v3 (when ``secret_key`` is set; PubNub docs, "Configure access control":
  "any client using this keyset must present a valid token ... on each request"): ``POST
  /v3/pam/<sub>/grant`` (signed with the secret key) issues CBOR tokens as PubNub does
  (``pubnub/crypto`` ``parse_token``'s format); every other request must be signed with the
  secret key (the server) or carry a token (``auth``) bound to its ``uuid`` that grants the
  operation on **every** channel it names (subscribe, presence, here_now, state: ``read``;
  publish: ``write``), through ``res`` (exact names) or ``pat`` (RE2 patterns, evaluated
  with Python's ``re.search``). Otherwise 403 ``{"status": 403, "error": true, "service":
  "Access Manager", "message": "Forbidden", "payload": {"channels": [<only the refused
  ones>]}}`` (the shape ``pubnub/lib/errors/pubnub-api-error.js`` reads), and a multiplexed
  subscribe is refused as a whole. ``DELETE /v3/pam/<sub>/grant/<token>`` revokes a token.
* Presence: occupants per channel (a uuid is present while it long-polls or heartbeats, and
  for ``presence_timeout`` seconds after), ``join``/``leave``/``timeout``/``state-change``
  events on ``<channel>-pnpres``, ``here_now`` (with uuids and state) and ``set_state``.

* Subscribe message cap: one subscribe response carries at most ``message_queue_limit``
  messages (PubNub's default 100, configurable per keyset; over all channels of a multiplexed
  subscribe). When more were published since the client's timetoken, only the newest 100 are
  sent and the older ones are lost, as with PubNub's server-side channel queue ("A slow
  subscribe rate may cause messages to overflow the server side channel message queue ...
  defaults to 100 messages", PubNub docs, API limits). PubNub does not flag the overflow in
  the response: the JS SDK infers it by counting. Its legacy subscription manager emits
  ``PNRequestMessageCountExceededCategory`` when a response holds
  ``requestMessageCountThreshold`` (default 100) messages or more
  (``lib/core/components/subscription-manager.js`` in pubnub 12.0.3); the event engine, on by
  default since pubnub 8, does not check it at all, so a page must count for itself. The
  condition the fake sets is exactly that: a response of 100 messages. ``coalesce`` holds a
  woken long-poll that long, so a burst lands in one response.
* Outages: :meth:`FakePubNub.refuse` answers a status (503 by default, or PubNub's 403) to
  every subscribe for some seconds, the long-polls already waiting included, as when the
  service or the network fails under an open connection.

Known divergences: long-polls end after ``long_poll`` seconds (PubNub: 280 s); no message
storage/history, channel groups, wildcard subscribes, signals, ``fire`` or filter expressions;
no rate limits; tokens' ``ttl`` is checked against the fake's clock and ``expire_tokens()``;
the RE2 dialect is approximated by Python's ``re`` (rtbridge's patterns use only the syntax
both share); a revoked token is refused at once (PubNub may take a while to propagate it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import cbor2
import tornado.web

from .base import FakeHandler, Fault, LoopbackServer

READ, WRITE = 1, 2

MAX_MESSAGE_BYTES = 32768
#: Messages one subscribe response carries at most (PubNub's default queue limit per keyset).
MESSAGE_QUEUE_LIMIT = 100


@dataclass
class Published:
    timetoken: int
    channel: str
    message: Any
    publisher: str


@dataclass
class FakePubNub(LoopbackServer):
    publish_key: str = "demo-pub"
    subscribe_key: str = "demo-sub"
    #: Seconds a subscribe long-poll waits for messages before answering with none.
    long_poll: float = 20.0
    messages: list[Published] = field(default_factory=list)
    #: Access Manager is on when set: unsigned requests need a token.
    secret_key: str | None = None
    #: Seconds an occupant stays after its last request (PubNub: the client's heartbeat value).
    presence_timeout: float = 300.0
    #: Messages per subscribe response; older ones beyond it are dropped (see the docstring).
    message_queue_limit: int = MESSAGE_QUEUE_LIMIT
    #: Messages dropped by that cap, per subscriber uuid (for tests).
    overflowed: dict[str, int] = field(default_factory=dict)
    #: Seconds a woken long-poll waits before it answers, so a burst lands in one response
    #: (PubNub's edge sends what its queue holds; 0 answers at the first message).
    coalesce: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._last_timetoken = 0
        self._waiters: list[tuple[set[str], asyncio.Future[None]]] = []
        #: channel → uuid → {"state": dict | None, "seen": monotonic time, "polls": open polls}
        self.occupants: dict[str, dict[str, dict[str, Any]]] = {}
        self.tokens_issued: list[dict[str, Any]] = []
        #: When each token (by signature) was last issued, and the cutoff of ``expire_tokens``.
        self.issued_at: dict[bytes, float] = {}
        self.expired_before = 0.0
        #: Signatures of revoked tokens, and why requests were refused (newest last).
        self.revoked: set[bytes] = set()
        self.refusals: list[str] = []
        self._sweeper: asyncio.Task[None] | None = None

    def reset(self) -> None:
        """Forget keys, Access Manager, presence and faults set by a test."""
        self.faults.clear()
        self.publish_key, self.subscribe_key = "demo-pub", "demo-sub"
        self.secret_key = None
        self.presence_timeout = 300.0
        self.message_queue_limit = MESSAGE_QUEUE_LIMIT
        self.overflowed.clear()
        self.coalesce = 0.0
        self.occupants.clear()
        self.revoked.clear()

    # Presence -----------------------------------------------------------------------------

    def touch(self, channels: set[str], uuid: str, state: dict[str, Any] | None = None) -> None:
        """Mark ``uuid`` present on ``channels`` now; a newcomer's join is announced."""
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        for channel in channels:
            if channel.endswith("-pnpres"):
                continue
            here = self.occupants.setdefault(channel, {})
            entry = here.get(uuid)
            if entry is None:
                entry = here[uuid] = {"state": None, "seen": time.monotonic(), "polls": 0}
                if state and isinstance(state.get(channel), dict):
                    entry["state"] = state[channel]
                self.announce(channel, "join", uuid, entry["state"])
            entry["seen"] = time.monotonic()

    def set_state(self, channel: str, uuid: str, state: dict[str, Any]) -> None:
        """Store ``uuid``'s state on ``channel`` and announce a ``state-change``."""
        here = self.occupants.setdefault(channel, {})
        entry = here.setdefault(uuid, {"state": None, "seen": time.monotonic(), "polls": 0})
        entry["state"] = state
        self.announce(channel, "state-change", uuid, state)

    def remove(self, channel: str, uuid: str, action: str) -> None:
        """Drop ``uuid`` from ``channel`` and announce ``action`` (leave or timeout)."""
        if self.occupants.get(channel, {}).pop(uuid, None) is not None:
            self.announce(channel, action, uuid, None)

    def announce(self, channel: str, action: str, uuid: str, state: dict[str, Any] | None) -> None:
        event: dict[str, Any] = {
            "action": action,
            "uuid": uuid,
            "timestamp": int(time.time()),
            "occupancy": len(self.occupants.get(channel, {})),
        }
        if state is not None:
            event["data"] = state
        self.deliver(f"{channel}-pnpres", event, "")

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            limit = time.monotonic() - self.presence_timeout
            for channel, here in list(self.occupants.items()):
                for uuid, entry in list(here.items()):
                    if entry["polls"] <= 0 and entry["seen"] < limit:
                        self.remove(channel, uuid, "timeout")

    # Access Manager -------------------------------------------------------------------------

    def issue_token(self, grant: dict[str, Any]) -> str:
        """Return a token for a grant request body, encoded and signed as PubNub's are."""
        assert self.secret_key is not None
        permissions = grant.get("permissions", {})
        body: dict[str, Any] = {
            "v": 2,
            "t": int(time.time()),
            "ttl": int(grant["ttl"]),
            "res": _token_resources(permissions.get("resources", {})),
            "pat": _token_resources(permissions.get("patterns", {})),
            "meta": permissions.get("meta", {}),
        }
        if permissions.get("uuid"):
            body["uuid"] = permissions["uuid"]
        signed = cbor2.dumps(body)
        body["sig"] = hmac.new(self.secret_key.encode(), signed, hashlib.sha256).digest()
        self.tokens_issued.append(body)
        self.issued_at[body["sig"]] = time.monotonic()
        return base64.urlsafe_b64encode(cbor2.dumps(body)).decode()

    def expire_tokens(self) -> None:
        """Treat every token issued so far as expired (as if its TTL had passed)."""
        self.expired_before = time.monotonic()

    def check_token(self, token: str, uuid: str, needs: dict[str, int]) -> str | None:
        """Return why ``token`` does not give ``uuid`` the ``needs`` (channel → bits), or None."""
        assert self.secret_key is not None
        try:
            body = cbor2.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            signature = body.pop("sig")
        except Exception:
            return "Token is malformed"
        expected = hmac.new(self.secret_key.encode(), cbor2.dumps(body), hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            return "Token signature is invalid"
        expired = self.issued_at.get(signature, 0.0) < self.expired_before
        if time.time() > body["t"] + body["ttl"] * 60 or expired:
            return "Token is expired"
        if body.get("uuid") and body["uuid"] != uuid:
            return "Token is not authorized for this uuid"
        if signature in self.revoked:
            return "Token is revoked"
        refused = self.refused_channels(body, needs)
        if refused:
            return f"Token has no permission for channel {', '.join(refused)}"
        return None

    def refused_channels(self, token: dict[str, Any], needs: dict[str, int]) -> list[str]:
        """Return the channels of ``needs`` (channel → bits) that ``token`` does not grant."""
        exact = token.get("res", {}).get("chan", {})
        patterns = token.get("pat", {}).get("chan", {})
        refused = []
        for channel, bits in needs.items():
            have = exact.get(channel, 0)
            for pattern, pattern_bits in patterns.items():
                if re.search(pattern, channel):
                    have |= pattern_bits
            if have & bits != bits:
                refused.append(channel)
        return sorted(refused)

    def token_body(self, token: str) -> dict[str, Any] | None:
        """Return a token's decoded body (without checking it), or None if it is malformed."""
        try:
            body = cbor2.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except Exception:
            return None
        return body if isinstance(body, dict) else None

    def signed_by_secret(self, method: str, path: str, query: str, body: bytes) -> bool:
        """Return whether the request carries a valid signature made with the secret key."""
        params = dict(parse_qsl(query, keep_blank_values=True))
        signature = params.pop("signature", None)
        if signature is None or self.secret_key is None:
            return False
        encoded = "&".join(
            f"{key}={quote(str(params[key]), safe='').replace('~', '%7E')}"
            for key in sorted(params)
        )
        if signature.startswith("v2."):
            text = f"{method}\n{self.publish_key}\n{path}\n{encoded}\n{body.decode()}"
            prefix = "v2."
        else:  # publish with POST: the first signature scheme
            text = f"{self.subscribe_key}\n{self.publish_key}\n{path}\n{encoded}"
            prefix = ""
        digest = hmac.new(self.secret_key.encode(), text.encode(), hashlib.sha256).digest()
        expected = base64.urlsafe_b64encode(digest).decode()
        if prefix:
            expected = prefix + expected.rstrip("=")
        return hmac.compare_digest(signature, expected)

    def timetoken(self) -> int:
        """Return a new timetoken (100 ns units), strictly larger than the previous one."""
        self._last_timetoken = max(self._last_timetoken + 1, int(time.time() * 10_000_000))
        return self._last_timetoken

    def make_app(self) -> tornado.web.Application:
        options = {"server": self}
        return tornado.web.Application(
            [
                (r"/time/0", TimeHandler, options),
                (r"/publish/([^/]+)/([^/]+)/0/([^/]+)/0(?:/(.*))?", PublishHandler, options),
                (r"/v2/subscribe/([^/]+)/([^/]+)/0", SubscribeHandler, options),
                (
                    r"/v2/presence/sub[-_]key/([^/]+)/channel/([^/]+)/(heartbeat|leave)",
                    PresenceHandler,
                    options,
                ),
                (
                    r"/v2/presence/sub[-_]key/([^/]+)/channel/([^/]+)/uuid/([^/]+)/data",
                    SetStateHandler,
                    options,
                ),
                (r"/v2/presence/sub[-_]key/([^/]+)/channel/([^/]+)", HereNowHandler, options),
                (r"/v3/pam/([^/]+)/grant", GrantHandler, options),
                (r"/v3/pam/([^/]+)/grant/([^/]+)", RevokeHandler, options),
                (r"/.*", NotFoundHandler, options),
            ]
        )

    def refuse(self, seconds: float, status: int = 503, path_prefix: str = "/v2/subscribe") -> None:
        """Answer ``status`` to every request under ``path_prefix`` for ``seconds``, the open
        long-polls included (an outage, or with 403 a refusal, reaches the waiting ones too)."""
        body = json.dumps({"status": status, "error": True, "message": "injected outage"})
        self.inject(
            Fault.for_seconds(
                seconds, status=status, methods=("GET",), path_prefix=path_prefix, body=body
            )
        )

        async def wake() -> None:
            for _, waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)

        self.call(wake)

    def deliver(self, channel: str, message: Any, publisher: str) -> int:
        timetoken = self.timetoken()
        self.messages.append(Published(timetoken, channel, message, publisher))
        for channels, waiter in list(self._waiters):
            if channel in channels and not waiter.done():
                waiter.set_result(None)
        return timetoken

    def since(self, channels: set[str], timetoken: int) -> list[Published]:
        return [m for m in self.messages if m.timetoken > timetoken and m.channel in channels]

    async def wait(
        self, channels: set[str], timeout: float, cancel: asyncio.Future[None] | None = None
    ) -> None:
        """Wait until a message for ``channels`` arrives, ``timeout`` passes or ``cancel`` is set.

        The waiter is registered before the first ``await``, so nothing delivered after the
        caller's last look can be missed.
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (channels, waiter)
        self._waiters.append(entry)
        try:
            waits: list[asyncio.Future[None]] = [waiter] + ([cancel] if cancel else [])
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._waiters.remove(entry)

    async def on_stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def received(self, channel: str) -> list[Any]:
        """Return the messages published on ``channel`` (as stored), oldest first."""
        return [m.message for m in self.messages if m.channel == channel]


def _token_resources(resources: dict[str, Any]) -> dict[str, Any]:
    """Map a grant request's resource names to a token's (channels → chan, ...)."""
    names = {"channels": "chan", "groups": "grp", "uuids": "uuid", "users": "usr", "spaces": "spc"}
    return {names[key]: dict(value) for key, value in resources.items() if key in names}


class PubNubHandler(FakeHandler):
    server: FakePubNub

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", 'text/javascript; charset="UTF-8"')
        self.set_header("Access-Control-Allow-Origin", "*")
        self.finish(json.dumps(value, separators=(",", ":")))

    def denied(self, needs: dict[str, int]) -> bool:
        """Answer 403 and return True unless Access Manager lets this request through."""
        server = self.server
        if server.secret_key is None:
            return False
        request = self.request
        method = request.method or "GET"
        if server.signed_by_secret(method, request.path, request.query, request.body):
            return False
        token = self.get_query_argument("auth", None)
        reason: str | None = "No auth token given"
        refused = sorted(needs)
        if token is not None:
            reason = server.check_token(token, self.get_query_argument("uuid", ""), needs)
            body = server.token_body(token)
            if reason is not None and reason.startswith("Token has no permission") and body:
                refused = server.refused_channels(body, needs)
        if reason is None:
            return False
        server.refusals.append(f"{request.path}: {reason}")
        self.reply(
            {
                "status": 403,
                "error": True,
                "service": "Access Manager",
                "message": "Forbidden",
                "payload": {"channels": refused},
            },
            status=403,
        )
        return True

    def state_argument(self) -> dict[str, Any] | None:
        try:
            value = json.loads(self.get_query_argument("state", "null"))
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class TimeHandler(PubNubHandler):
    def get(self) -> None:
        self.reply([self.server.timetoken()])


class PublishHandler(PubNubHandler):
    def get(self, pub: str, sub: str, channel: str, message: str | None) -> None:
        # The escaped path segment as sent, not its decoded text, is what PubNub counts.
        sent = self.request.path.rsplit("/", 1)[-1]
        self._publish(pub, sub, channel, unquote(message or ""), len(sent))

    def post(self, pub: str, sub: str, channel: str, _message: str | None) -> None:
        body = self.request.body
        self._publish(pub, sub, channel, body.decode("utf-8"), len(body))

    def _publish(self, pub: str, sub: str, channel: str, text: str, size: int) -> None:
        server = self.server
        if pub != server.publish_key or sub != server.subscribe_key:
            self.reply([0, "Invalid Key", str(server.timetoken())], status=400)
            return
        channel_in_path = self.request.path.split("/")[5]
        if size + len(channel_in_path) > MAX_MESSAGE_BYTES:
            self.reply([0, "Message Too Large", str(server.timetoken())], status=400)
            return
        try:
            message = json.loads(text)
        except ValueError:
            self.reply([0, "Invalid JSON", str(server.timetoken())], status=400)
            return
        if self.denied({channel: WRITE}):
            return
        publisher = self.get_query_argument("uuid", "")
        timetoken = server.deliver(channel, message, publisher)
        self.reply([1, "Sent", str(timetoken)])


class SubscribeHandler(PubNubHandler):
    async def get(self, sub: str, channels_text: str) -> None:
        server = self.server
        if sub != server.subscribe_key:
            self.reply(
                {"status": 400, "message": "Invalid Subscribe Key", "error": True},
                status=400,
            )
            return
        channels = {c for c in channels_text.split(",") if c and c != ","}
        if self.denied({channel: READ for channel in channels}):
            return
        uuid = self.get_query_argument("uuid", "")
        since = int(self.get_query_argument("tt", "0") or 0)
        if since == 0:
            # The handshake: tell the client where "now" is.
            timetoken = server.timetoken()
            server.touch(channels, uuid, self.state_argument())
            self.reply({"t": {"t": str(timetoken), "r": 1}, "m": []})
            return
        server.touch(channels, uuid)
        found = server.since(channels, since)
        if not found:
            self.polling = [
                server.occupants.get(c, {}).get(uuid) for c in channels if not c.endswith("-pnpres")
            ]
            for entry in self.polling:
                if entry is not None:
                    entry["polls"] += 1
            self.closed = asyncio.get_running_loop().create_future()
            try:
                await server.wait(channels, server.long_poll, self.closed)
                if server.coalesce and not self.closed.done():
                    await asyncio.wait([self.closed], timeout=server.coalesce)
            finally:
                self.stop_polling()
            if self.refused_now():
                return
            found = server.since(channels, since)
        if self.request.connection is None or self._finished or self.closed_early:
            return
        latest = max([since] + [m.timetoken for m in found])
        if len(found) > server.message_queue_limit:
            # The queue kept the newest ones; the cursor still moves past all of them.
            dropped = len(found) - server.message_queue_limit
            server.overflowed[uuid] = server.overflowed.get(uuid, 0) + dropped
            found = found[dropped:]
        self.reply(
            {
                "t": {"t": str(latest), "r": 1},
                "m": [
                    {
                        "a": "0",
                        "f": 0,
                        "i": m.publisher,
                        "p": {"t": str(m.timetoken), "r": 1},
                        "k": sub,
                        "c": m.channel,
                        "d": m.message,
                    }
                    for m in found
                ],
            }
        )

    polling: list[dict[str, Any] | None] = []
    closed: asyncio.Future[None] | None = None
    closed_early = False

    def refused_now(self) -> bool:
        """Answer an outage that began while this long-poll waited (see ``FakePubNub.refuse``)."""
        now = time.monotonic()
        for fault in self.server.faults:
            active = fault.until is not None and fault.until > now and fault.status is not None
            if active and self.request.path.startswith(fault.path_prefix):
                assert fault.status is not None
                self.set_status(fault.status)
                self.set_header("Content-Type", "application/json")
                self.set_header("Access-Control-Allow-Origin", "*")
                self.finish(fault.body)
                return True
        return False

    def stop_polling(self) -> None:
        for entry in self.polling:
            if entry is not None:
                entry["polls"] -= 1
                entry["seen"] = time.monotonic()
        self.polling = []

    def on_connection_close(self) -> None:
        # The client went away mid-poll (closed, crashed): it is no longer "polling".
        self.closed_early = True
        if self.closed is not None and not self.closed.done():
            self.closed.set_result(None)


def _channel_list(text: str) -> list[str]:
    return [unquote(c) for c in text.split(",") if c]


class PresenceHandler(PubNubHandler):
    def get(self, sub: str, channels_text: str, action: str) -> None:
        channels = _channel_list(channels_text)
        if self.denied({channel: READ for channel in channels}):
            return
        uuid = self.get_query_argument("uuid", "")
        if action == "leave":
            for channel in channels:
                self.server.remove(channel, uuid, "leave")
        else:
            self.server.touch(set(channels), uuid, self.state_argument())
        body: dict[str, Any] = {"status": 200, "message": "OK", "service": "Presence"}
        if action == "leave":
            body["action"] = "leave"
        self.reply(body)


class SetStateHandler(PubNubHandler):
    def get(self, sub: str, channels_text: str, uuid: str) -> None:
        channels = _channel_list(channels_text)
        if self.denied({channel: READ for channel in channels}):
            return
        state = self.state_argument() or {}
        for channel in channels:
            self.server.set_state(channel, unquote(uuid), state)
        self.reply({"status": 200, "message": "OK", "payload": state, "service": "Presence"})


class HereNowHandler(PubNubHandler):
    def get(self, sub: str, channels_text: str) -> None:
        channels = _channel_list(channels_text)
        if self.denied({channel: READ for channel in channels}):
            return
        with_uuids = self.get_query_argument("disable_uuids", "0") != "1"
        with_state = self.get_query_argument("state", "0") == "1"

        def describe(channel: str) -> dict[str, Any]:
            here = self.server.occupants.get(channel, {})
            entry: dict[str, Any] = {"occupancy": len(here)}
            if with_uuids:
                entry["uuids"] = [
                    {"uuid": uuid, "state": value["state"]} if with_state else uuid
                    for uuid, value in sorted(here.items())
                ]
            return entry

        if len(channels) == 1:
            body = {"status": 200, "message": "OK", "service": "Presence", **describe(channels[0])}
        else:
            described = {channel: describe(channel) for channel in channels}
            body = {
                "status": 200,
                "message": "OK",
                "service": "Presence",
                "payload": {
                    "channels": described,
                    "total_channels": len(channels),
                    "total_occupancy": sum(d["occupancy"] for d in described.values()),
                },
            }
        self.reply(body)


class GrantHandler(PubNubHandler):
    def post(self, sub: str) -> None:
        server = self.server
        request = self.request
        if sub != server.subscribe_key:
            self.reply({"status": 400, "error": True, "message": "Invalid Subscribe Key"}, 400)
            return
        if server.secret_key is None:
            self.reply({"status": 400, "error": True, "message": "Access Manager is off"}, 400)
            return
        if not server.signed_by_secret("POST", request.path, request.query, request.body):
            self.reply({"status": 403, "error": True, "message": "Invalid Signature"}, 403)
            return
        token = server.issue_token(json.loads(request.body))
        self.reply(
            {
                "status": 200,
                "data": {"message": "Success", "token": token},
                "service": "Access Manager",
            }
        )


class RevokeHandler(PubNubHandler):
    def delete(self, sub: str, token: str) -> None:
        server = self.server
        request = self.request
        if server.secret_key is None or sub != server.subscribe_key:
            self.reply({"status": 400, "error": True, "message": "Invalid Subscribe Key"}, 400)
            return
        if not server.signed_by_secret("DELETE", request.path, request.query, request.body):
            self.reply({"status": 403, "error": True, "message": "Invalid Signature"}, 403)
            return
        body = server.token_body(unquote(token))
        if body is None or "sig" not in body:
            self.reply({"status": 400, "error": True, "message": "Invalid token"}, 400)
            return
        server.revoked.add(body["sig"])
        self.reply({"status": 200, "data": {"message": "Success"}, "service": "Access Manager"})


class NotFoundHandler(PubNubHandler):
    def get(self) -> None:
        self.reply({"status": 404, "error": True, "message": "not in the fake"}, status=404)

    post = delete = get
