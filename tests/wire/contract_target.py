"""Contract targets for the hosted backends: each publishes for real and receives with the JS SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rtbridge.backends.base import BaseBackend
from rtbridge.backends.firebase import FirebaseBackend
from rtbridge.backends.pubnub import PubNubBackend
from rtbridge.backends.pusher import PusherBackend
from rtbridge.channel_names import encode_for_firebase, encode_for_pubnub, encode_for_pusher
from tests.wire.servers import (
    NodeListener,
    shared_fake_firebase,
    shared_fake_pubnub,
    shared_soketi,
)


@dataclass
class NodeTarget:
    """A backend plus a way to start a Node listener on some channels."""

    backend: BaseBackend
    script: str
    config: dict[str, Any]
    encode: Callable[[str], str]

    def listen(self, channels: list[str]) -> NodeListener:
        pairs = [[name, self.encode(name)] for name in channels]
        return NodeListener(self.script, {**self.config, "channels": pairs})


def pusher_target(request: pytest.FixtureRequest) -> Iterator[NodeTarget]:
    """PusherBackend → soketi → pusher-js."""
    server = shared_soketi(request.config)
    backend = PusherBackend(**server.options)
    config = {"key": server.options["key"], "wsHost": "127.0.0.1", "wsPort": server.port}
    yield NodeTarget(backend, "listen_pusher.mjs", config, encode_for_pusher)


def pubnub_target(request: pytest.FixtureRequest) -> Iterator[NodeTarget]:
    """PubNubBackend → fake PubNub → the pubnub JS SDK."""
    server = shared_fake_pubnub(request.config)
    backend = PubNubBackend(
        publish_key=server.publish_key,
        subscribe_key=server.subscribe_key,
        origin=server.host,
        ssl=False,
    )
    config = {"subscribeKey": server.subscribe_key, "origin": server.host}
    yield NodeTarget(backend, "listen_pubnub.mjs", config, encode_for_pubnub)


def firebase_target(request: pytest.FixtureRequest) -> Iterator[NodeTarget]:
    """FirebaseBackend → fake Realtime Database → the firebase JS SDK (emulator mode)."""
    server = shared_fake_firebase(request.config)
    backend = FirebaseBackend(database_url=server.database_url, emulator_host=server.host)
    config = {
        "databaseURL": server.database_url,
        "host": "127.0.0.1",
        "port": server.port,
        "root": backend.root,
    }
    yield NodeTarget(backend, "listen_firebase.mjs", config, encode_for_firebase)
