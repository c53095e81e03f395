"""A loopback Pusher HTTP API stand-in for fault tests: it answers every event request with ``{}``.

Soketi is the real server for delivery tests; this one only exists because soketi cannot be made
to answer 5xx or to hang on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

import tornado.web

from .base import FakeHandler, LoopbackServer


@dataclass
class FakePusherAPI(LoopbackServer):
    def make_app(self) -> tornado.web.Application:
        return tornado.web.Application([(r"/apps/[0-9]+/.*", EventsHandler, {"server": self})])


class EventsHandler(FakeHandler):
    def post(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish("{}")

    get = post
