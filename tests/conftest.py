"""Shared fixtures: real services started on free ports and stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services import RedisServer, start_redis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real ``redis-server`` on a free port for the whole session."""
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    """A real ``redis-server`` of this test's own (for tests that stop and restart it)."""
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()
