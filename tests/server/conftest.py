"""Fixtures for the server tests: servers on free ports, started in a thread and stopped after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from rtbridge.server import Server


@pytest.fixture
def make_server() -> Iterator[Callable[..., Server]]:
    """Return a factory of started servers (``Server(**kwargs).start()``); all stop after."""
    started: list[Server] = []

    def factory(**kwargs: Any) -> Server:
        server = Server(**kwargs).start()
        started.append(server)
        return server

    yield factory
    for server in reversed(started):
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., Server]) -> Server:
    """A server with the in-memory broker on a free port."""
    return make_server()
