"""Shared fixtures: real services started on free ports and stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services import (
    IN_CI,
    RedisClusterNodes,
    RedisSentinelSet,
    RedisServer,
    start_redis,
    start_redis_cluster,
    start_redis_sentinel,
)


def pytest_sessionstart(session: pytest.Session) -> None:
    """With RTBRIDGE_TEST_DB=postgres, make sure the server is there (fail under CI=true)."""
    import os
    import socket

    if os.environ.get("RTBRIDGE_TEST_DB") != "postgres":
        return
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
    except OSError as exc:
        reason = (
            f"PostgreSQL is not reachable on 127.0.0.1:5432 ({exc}); to run this part, run: "
            "sudo apt-get install -y postgresql && sudo service postgresql start && "
            "sudo -u postgres createdb test (and trust auth for 127.0.0.1 in pg_hba.conf)"
        )
        if IN_CI:
            pytest.exit(f"required service missing under CI=true: {reason}", returncode=1)
        pytest.exit(f"skipping the PostgreSQL run: {reason}", returncode=0)


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


@pytest.fixture(scope="session")
def redis_cluster_nodes() -> Iterator[RedisClusterNodes]:
    """A 3-primary/3-replica Redis Cluster for the whole session (started on first use)."""
    cluster = start_redis_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster(redis_cluster_nodes: RedisClusterNodes) -> RedisClusterNodes:
    """The session's Redis Cluster, whole again (every node up) before the test starts."""
    redis_cluster_nodes.repair()
    return redis_cluster_nodes


@pytest.fixture(scope="session")
def redis_sentinel_set() -> Iterator[RedisSentinelSet]:
    """A primary, a replica and 3 sentinels for the whole session (started on first use)."""
    sentinel_set = start_redis_sentinel()
    try:
        yield sentinel_set
    finally:
        sentinel_set.stop()


@pytest.fixture
def redis_sentinel(redis_sentinel_set: RedisSentinelSet) -> RedisSentinelSet:
    """The session's Sentinel set, healthy (both data nodes up and in sync) before the test."""
    redis_sentinel_set.repair()
    return redis_sentinel_set
