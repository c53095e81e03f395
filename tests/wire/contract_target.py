"""Contract targets for the hosted backends: real publishes, received by the rtbridge JS client.

The JS client runs in Node with the vendor's own SDK, configured from the backend's
``client_config()``, so the Python and JS halves are checked against each other on the wire.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from rtbridge.backends.base import BaseBackend
from rtbridge.backends.firebase import FirebaseBackend
from rtbridge.backends.pubnub import PubNubBackend
from rtbridge.backends.pusher import PusherBackend
from tests.wire.servers import (
    NodeListener,
    shared_fake_firebase,
    shared_fake_pubnub,
    shared_soketi,
)


@dataclass
class NodeTarget:
    """A backend plus a way to start an rtbridge JS client listening on some channels."""

    backend: BaseBackend

    def listen(self, channels: list[str]) -> NodeListener:
        config = {"config": self.backend.client_config(), "channels": channels}
        return NodeListener("listen_rtbridge.mjs", config)


def pusher_target(request: pytest.FixtureRequest) -> Iterator[NodeTarget]:
    """PusherBackend → soketi → pusher-js → the rtbridge JS client."""
    yield NodeTarget(PusherBackend(**shared_soketi(request.config).options))


def pubnub_target(request: pytest.FixtureRequest) -> Iterator[NodeTarget]:
    """PubNubBackend → fake PubNub → the pubnub JS SDK → the rtbridge JS client."""
    server = shared_fake_pubnub(request.config)
    yield NodeTarget(
        PubNubBackend(
            publish_key=server.publish_key,
            subscribe_key=server.subscribe_key,
            origin=server.host,
            ssl=False,
        )
    )


def firebase_target(request: pytest.FixtureRequest) -> Iterator[NodeTarget]:
    """FirebaseBackend → fake Realtime Database → the firebase JS SDK → the rtbridge JS client."""
    server = shared_fake_firebase(request.config)
    yield NodeTarget(FirebaseBackend(database_url=server.database_url, emulator_host=server.host))
