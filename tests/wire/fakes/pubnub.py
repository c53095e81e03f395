"""A loopback PubNub: the REST subset the Python and JS SDKs use, with subscribers routed live.

Publish (GET with the message in the path, or POST with it in the body), subscribe long-polls
with timetokens, heartbeat, leave and ``/time/0``. Keys are checked (a wrong key answers 400, as
PubNub does) and messages over 32 KiB answer 413.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import tornado.web

from .base import FakeHandler, LoopbackServer

MAX_MESSAGE_BYTES = 32768


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

    def __post_init__(self) -> None:
        super().__post_init__()
        self._last_timetoken = 0
        self._waiters: list[tuple[set[str], asyncio.Future[None]]] = []

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
                (r"/.*", NotFoundHandler, options),
            ]
        )

    def deliver(self, channel: str, message: Any, publisher: str) -> int:
        timetoken = self.timetoken()
        self.messages.append(Published(timetoken, channel, message, publisher))
        for channels, waiter in list(self._waiters):
            if channel in channels and not waiter.done():
                waiter.set_result(None)
        return timetoken

    def since(self, channels: set[str], timetoken: int) -> list[Published]:
        return [m for m in self.messages if m.timetoken > timetoken and m.channel in channels]

    async def wait(self, channels: set[str], timeout: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (channels, waiter)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._waiters.remove(entry)

    async def on_stop(self) -> None:
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def received(self, channel: str) -> list[Any]:
        """Return the messages published on ``channel`` (as stored), oldest first."""
        return [m.message for m in self.messages if m.channel == channel]


class PubNubHandler(FakeHandler):
    server: FakePubNub

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", 'text/javascript; charset="UTF-8"')
        self.set_header("Access-Control-Allow-Origin", "*")
        self.finish(json.dumps(value, separators=(",", ":")))


class TimeHandler(PubNubHandler):
    def get(self) -> None:
        self.reply([self.server.timetoken()])


class PublishHandler(PubNubHandler):
    def get(self, pub: str, sub: str, channel: str, message: str | None) -> None:
        self._publish(pub, sub, channel, unquote(message or ""))

    def post(self, pub: str, sub: str, channel: str, _message: str | None) -> None:
        self._publish(pub, sub, channel, self.request.body.decode("utf-8"))

    def _publish(self, pub: str, sub: str, channel: str, text: str) -> None:
        server = self.server
        if pub != server.publish_key or sub != server.subscribe_key:
            self.reply([0, "Invalid Key", str(server.timetoken())], status=400)
            return
        if len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
            self.reply([0, "Message Too Large", str(server.timetoken())], status=413)
            return
        try:
            message = json.loads(text)
        except ValueError:
            self.reply([0, "Invalid JSON", str(server.timetoken())], status=400)
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
        since = int(self.get_query_argument("tt", "0") or 0)
        if since == 0:
            # The handshake: tell the client where "now" is.
            self.reply({"t": {"t": str(server.timetoken()), "r": 1}, "m": []})
            return
        found = server.since(channels, since)
        if not found:
            await server.wait(channels, server.long_poll)
            found = server.since(channels, since)
        if self.request.connection is None or self._finished:
            return
        latest = max([since] + [m.timetoken for m in found])
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


class PresenceHandler(PubNubHandler):
    def get(self, sub: str, channels: str, action: str) -> None:
        body: dict[str, Any] = {"status": 200, "message": "OK", "service": "Presence"}
        if action == "leave":
            body["action"] = "leave"
        self.reply(body)


class NotFoundHandler(PubNubHandler):
    def get(self) -> None:
        self.reply({"status": 404, "error": True, "message": "not in the fake"}, status=404)

    post = get
