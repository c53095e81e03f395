"""Sharded subscriptions on a real Redis Cluster: per-shard connections, losses and restores."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from rtbridge.redis_target import ClusterRedis
from rtbridge.redis_wire import key_slot
from rtbridge.server.shards import ShardedSubscriptions
from tests.server.helpers import eventually
from tests.services import DATA_PASSWORD, RedisClusterNodes, RedisServer


@dataclass
class Recorder:
    """A ShardListener that keeps everything it is told."""

    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    lost: list[bytes] = field(default_factory=list)
    restored: list[bytes] = field(default_factory=list)

    def shard_message(self, name: bytes, data: bytes) -> None:
        self.messages.append((name, data))

    def shard_lost(self, names: list[bytes]) -> None:
        self.lost.extend(names)

    def shard_restored(self, names: list[bytes]) -> None:
        self.restored.extend(names)

    def data(self, name: bytes) -> list[bytes]:
        return [data for channel, data in self.messages if channel == name]


def cluster_target(cluster: RedisClusterNodes) -> ClusterRedis:
    return ClusterRedis(tuple(("127.0.0.1", n.port) for n in cluster.nodes), password=DATA_PASSWORD)


@pytest.fixture
async def shards(
    redis_cluster: RedisClusterNodes,
) -> AsyncIterator[tuple[ShardedSubscriptions, Recorder]]:
    recorder = Recorder()
    subscriptions = ShardedSubscriptions(
        cluster_target(redis_cluster), recorder, reconnect_max_delay=0.2, ping_interval=1.0
    )
    await subscriptions.start()
    try:
        yield subscriptions, recorder
    finally:
        await subscriptions.stop()


def names_on_every_shard(cluster: RedisClusterNodes, per_shard: int = 2) -> list[bytes]:
    """Return shard channel names, ``per_shard`` on each primary (by today's slot map)."""
    tag = secrets.token_hex(3)
    found: dict[int, list[bytes]] = {}
    primaries = {node.port for node in cluster.primary_nodes()}
    number = 0
    while any(len(found.get(port, [])) < per_shard for port in primaries):
        name = f"t{tag}:{{chan{number}}}".encode()
        number += 1
        port = cluster.primary_for_slot(key_slot(name)).port
        if len(found.setdefault(port, [])) < per_shard:
            found[port].append(name)
    return [name for names in found.values() for name in names]


def spublish(cluster: RedisClusterNodes, name: bytes, data: bytes) -> int:
    with contextlib.closing(cluster.primary_for_slot(key_slot(name)).client()) as client:
        return int(client.execute_command("SPUBLISH", name, data))


def shard_subscribers(node: RedisServer) -> int:
    with contextlib.closing(node.client()) as client:
        return sum(1 for c in client.client_list(_type="pubsub") if int(c.get("ssub", 0)) > 0)


async def test_one_connection_per_shard_and_messages_from_all(
    redis_cluster: RedisClusterNodes, shards: tuple[ShardedSubscriptions, Recorder]
) -> None:
    subscriptions, recorder = shards
    names = names_on_every_shard(redis_cluster)
    await asyncio.gather(*(subscriptions.subscribe(name) for name in names))
    assert subscriptions.connected
    assert len(subscriptions.shards) == 3  # one per primary, not one per channel
    for node in redis_cluster.primary_nodes():
        assert shard_subscribers(node) == 1
    for name in names:
        assert spublish(redis_cluster, name, b"hello " + name) == 1
    await eventually(lambda: len(recorder.messages) == len(names))
    assert sorted(recorder.messages) == sorted((name, b"hello " + name) for name in names)
    # The last channel of a shard closes its connection.
    first = names[0]
    primary = redis_cluster.primary_for_slot(key_slot(first))
    same = [n for n in names if redis_cluster.primary_for_slot(key_slot(n)) is primary]
    for name in same:
        subscriptions.unsubscribe(name)
    assert len(subscriptions.shards) == 2
    await eventually(lambda: shard_subscribers(primary) == 0)
    assert recorder.lost == [] and recorder.restored == []


async def test_a_killed_primary_loses_only_its_channels_until_its_replica_serves(
    redis_cluster: RedisClusterNodes, shards: tuple[ShardedSubscriptions, Recorder]
) -> None:
    subscriptions, recorder = shards
    names = names_on_every_shard(redis_cluster)
    await asyncio.gather(*(subscriptions.subscribe(name) for name in names))
    victim = redis_cluster.primary_for_slot(key_slot(names[0]))
    on_victim = sorted(n for n in names if redis_cluster.primary_for_slot(key_slot(n)) is victim)
    victim.kill()
    await eventually(lambda: sorted(recorder.lost) == on_victim, timeout=5)
    await eventually(lambda: sorted(recorder.restored) == on_victim, timeout=20)
    assert subscriptions.connected
    # Heard again, now from the promoted replica.
    for name in names:
        spublish(redis_cluster, name, b"after")
    await eventually(lambda: all(recorder.data(name) == [b"after"] for name in names))


async def test_a_moved_slot_is_followed(
    redis_cluster: RedisClusterNodes, shards: tuple[ShardedSubscriptions, Recorder]
) -> None:
    subscriptions, recorder = shards
    name = names_on_every_shard(redis_cluster, 1)[0]
    other = names_on_every_shard(redis_cluster, 1)[1]
    await subscriptions.subscribe(name)
    await subscriptions.subscribe(other)
    slot = key_slot(name)
    source = redis_cluster.primary_for_slot(slot)
    target = next(node for node in redis_cluster.primary_nodes() if node is not source)
    redis_cluster.move_slot(slot, source, target)
    try:
        await eventually(lambda: recorder.lost == [name], timeout=5)
        await eventually(lambda: recorder.restored == [name], timeout=10)
        assert spublish(redis_cluster, name, b"moved") == 1
        await eventually(lambda: recorder.data(name) == [b"moved"])
        assert other not in recorder.lost  # other slots are not touched
    finally:
        redis_cluster.move_slot(slot, target, source)
