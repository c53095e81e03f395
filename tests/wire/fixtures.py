"""Pytest fixtures for the servers the hosted backends talk to (import them into a test module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.wire.fakes.firebase import FakeFirebase
from tests.wire.fakes.pubnub import FakePubNub
from tests.wire.fakes.pusher import FakePusherAPI
from tests.wire.servers import (
    AuthEmulator,
    Soketi,
    shared_auth_emulator,
    shared_fake_firebase,
    shared_fake_pubnub,
    shared_soketi,
)


@pytest.fixture
def soketi(request: pytest.FixtureRequest) -> Soketi:
    """A soketi server shared by the session (started on first use)."""
    return shared_soketi(request.config)


@pytest.fixture
def fake_pubnub(request: pytest.FixtureRequest) -> Iterator[FakePubNub]:
    """The session's fake PubNub, with this test's faults and keys reset afterwards."""
    server = shared_fake_pubnub(request.config)
    yield server
    server.reset()


@pytest.fixture
def fake_firebase(request: pytest.FixtureRequest) -> Iterator[FakeFirebase]:
    """The session's fake Realtime Database, with this test's faults reset afterwards."""
    server = shared_fake_firebase(request.config)
    yield server
    server.reset()


@pytest.fixture
def auth_emulator(request: pytest.FixtureRequest) -> AuthEmulator:
    """The Firebase Auth emulator shared by the session (started on first use)."""
    return shared_auth_emulator(request.config)


@pytest.fixture
def fake_pusher_api() -> Iterator[FakePusherAPI]:
    """A fresh Pusher HTTP API stand-in for fault injection (5xx, hangs)."""
    server = FakePusherAPI()
    server.start()
    try:
        yield server
    finally:
        server.stop()
