"""Redis Cluster end to end: two nodes and Django publishing over every shard, faults mid-stream."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import transaction

from rtbridge import channel_names
from rtbridge.backends.redis import RedisBackend
from rtbridge.publishers import reset_backend
from rtbridge.redis_target import ClusterRedis, from_options
from rtbridge.redis_wire import channel_key, key_slot
from rtbridge.server import ClusterBroker, Server
from tests.server.helpers import Client, Publisher, eventually, join, member_ids
from tests.services import DATA_PASSWORD, RedisClusterNodes, RedisServer
from tests.testapp.models import TodoItem, TodoList

MakeServer = Callable[..., Server]
FAILOVER_WAIT = 20.0


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing the cluster never collide."""
    return f"t{secrets.token_hex(4)}:"


def cluster_options(cluster: RedisClusterNodes) -> dict[str, Any]:
    return {"startup_nodes": cluster.startup_nodes[:2], "password": DATA_PASSWORD}


def target(cluster: RedisClusterNodes) -> ClusterRedis:
    found = from_options({"cluster": cluster_options(cluster)}, "test")
    assert isinstance(found, ClusterRedis)
    return found


def nodes(make_server: MakeServer, cluster: RedisClusterNodes, prefix: str) -> list[Server]:
    options = {"reconnect_max_delay": 0.5, "presence_ttl": 3.0}
    return [make_server(redis_url=target(cluster), prefix=prefix, options=options) for _ in "ab"]


def shard_of(cluster: RedisClusterNodes, prefix: str, channel: str) -> RedisServer:
    return cluster.primary_for_slot(key_slot(channel_key(prefix, channel)))


def channels_on_every_shard(cluster: RedisClusterNodes, prefix: str) -> list[str]:
    """Return a channel name per shard primary (by today's slot map)."""
    found: dict[int, str] = {}
    number = 0
    while len(found) < len(cluster.primary_nodes()):
        channel = f"stream.s{number}"
        number += 1
        found.setdefault(shard_of(cluster, prefix, channel).port, channel)
    return sorted(found.values())


@pytest.fixture
def cluster_backend(
    settings: Any, redis_cluster: RedisClusterNodes, prefix: str
) -> Iterator[RedisBackend]:
    """Django publishes to the cluster (``RTBRIDGE_BACKEND = "redis"`` with ``cluster``)."""
    settings.RTBRIDGE_BACKEND = "redis"
    settings.RTBRIDGE_OPTIONS = {"cluster": cluster_options(redis_cluster), "prefix": prefix}
    reset_backend()
    from rtbridge.publishers import get_backend

    backend = get_backend()
    assert isinstance(backend, RedisBackend)
    yield backend
    reset_backend()


@pytest.mark.django_db(transaction=True)
async def test_models_publish_over_every_shard_to_two_nodes(
    make_server: MakeServer,
    redis_cluster: RedisClusterNodes,
    prefix: str,
    cluster_backend: RedisBackend,
) -> None:
    node1, node2 = nodes(make_server, redis_cluster, prefix)
    assert isinstance(node1.broker, ClusterBroker)
    # Lists until their filter channels cover every shard.
    lists: list[TodoList] = []
    covered: set[int] = set()
    while len(covered) < 3:
        todo_list = await asyncio.to_thread(TodoList.objects.create, name=f"l{len(lists)}")
        lists.append(todo_list)
        name = channel_names.filter_channel(TodoItem, {"todo_list__id": todo_list.pk})
        covered.add(shard_of(redis_cluster, prefix, name).port)
    channels = [channel_names.collection_channel(TodoItem)] + [
        channel_names.filter_channel(TodoItem, {"todo_list__id": todo_list.pk})
        for todo_list in lists
    ]
    clients = [await Client.open(node.url) for node in (node1, node2)]
    for client in clients:
        for channel in channels:
            await client.subscribe(channel)

    def save_items() -> list[TodoItem]:
        # Each transaction publishes once it commits (on_commit), as in a real request.
        with transaction.atomic():
            items = [TodoItem.objects.create(todo_list=t, text="é " * 3) for t in lists]
        with transaction.atomic():
            for item in items:
                item.done = True
                item.save()
        return items

    items = await asyncio.to_thread(save_items)
    for client in clients:
        # Per filter channel: created then updated; the collection gets all of them.
        frames = await client.messages(len(items) * 2 * 2)
        by_channel: dict[str, list[tuple[str, int]]] = {}
        for frame in frames:
            by_channel.setdefault(frame["channel"], []).append(
                (frame["event"], frame["data"]["id"])
            )
        for todo_list, item in zip(lists, items, strict=True):
            name = channel_names.filter_channel(TodoItem, {"todo_list__id": todo_list.pk})
            assert by_channel[name] == [("created", item.pk), ("updated", item.pk)]
        collection = by_channel[channel_names.collection_channel(TodoItem)]
        assert [e for e, _ in collection] == ["created"] * len(items) + ["updated"] * len(items)
    # One sharded-subscription connection per shard on each node, and SPUBLISH, not PUBLISH.
    for node in (node1, node2):
        broker = node.broker
        assert isinstance(broker, ClusterBroker) and broker.shards is not None
        assert len(broker.shards.shards) == 3
    for channel in channels:
        name = channel_key(prefix, channel)
        with contextlib.closing(shard_of(redis_cluster, prefix, channel).client()) as client:
            assert client.execute_command("PUBSUB", "SHARDNUMSUB", name)[1] == 2  # both nodes
            assert client.execute_command("PUBSUB", "NUMSUB", name)[1] == 0
    for client in clients:
        await client.close()


async def test_presence_whispers_and_revocation_across_nodes(
    make_server: MakeServer, redis_cluster: RedisClusterNodes, prefix: str
) -> None:
    node1, node2 = nodes(make_server, redis_cluster, prefix)
    channel = "presence-testapp.todolist.7"
    ann, bob = await Client.open(node1.url), await Client.open(node2.url)
    assert member_ids(await join(ann, channel, "1")) == ["1"]
    assert member_ids(await join(bob, channel, "2")) == ["1", "2"]
    joined = await ann.recv_op("presence")
    assert (joined["action"], joined["member"]["id"]) == ("join", "2")
    await bob.request("whisper", channel=channel, event="typing", data={"n": 1})
    whisper = await ann.recv_op("whisper")
    assert (whisper["event"], whisper["data"], whisper["user_id"]) == ("typing", {"n": 1}, "2")
    # Revocation: Django revokes user 2; node 2 ends bob's subscription, ann sees him leave.
    RedisBackend(cluster=cluster_options(redis_cluster), prefix=prefix).revoke("2", channel)
    assert (await bob.recv_op("revoked"))["channel"] == channel
    left = await ann.recv_op("presence")
    assert (left["action"], left["member"]["id"]) == ("leave", "2")
    late = await Client.open(node2.url)
    assert member_ids(await join(late, channel, "3")) == ["1", "3"]
    for client in (ann, bob, late):
        await client.close()


# Faults mid-stream ------------------------------------------------------------------------


async def read_streams(
    client: Client, channels: list[str], until: int, timeout: float = 15
) -> tuple[dict[str, list[int]], dict[str, int]]:
    """Read numbers per channel (and count gap frames) until each channel has ``until``."""
    numbers: dict[str, list[int]] = {channel: [] for channel in channels}
    gaps = dict.fromkeys(channels, 0)
    deadline = asyncio.get_running_loop().time() + timeout
    while any(not got or got[-1] < until for got in numbers.values()):
        frame = await client.recv(max(0.01, deadline - asyncio.get_running_loop().time()))
        if frame["op"] == "message":
            numbers[frame["channel"]].append(frame["data"])
        elif frame["op"] == "gap":
            gaps[frame["channel"]] += 1
    return numbers, gaps


def assert_delivered(
    numbers: dict[str, list[int]],
    gaps: dict[str, int],
    published: set[int],
    before: int,
    lossless: bool,
) -> None:
    """Every message in order, once; a missing one only on a channel that got a gap frame,
    and never one published before the fault. ``lossless``: no gap and nothing missing."""
    for channel, got in numbers.items():
        assert got == sorted(set(got)), f"{channel}: out of order or duplicated"
        missing = published - set(got)
        if lossless:
            assert (sorted(missing), gaps[channel]) == ([], 0), channel
        if missing:
            assert gaps[channel] >= 1, f"{channel}: lost {sorted(missing)} without a gap frame"
            assert min(missing) >= before, f"{channel}: lost a message from before the fault"


async def fault_mid_stream(
    make_server: MakeServer,
    cluster: RedisClusterNodes,
    prefix: str,
    fault: Callable[[list[str]], Any],
    *,
    lossless: bool,
) -> Publisher:
    """Stream on one channel per shard to 4 clients on 2 nodes, run ``fault``, check.

    ``lossless``: the fault loses nothing in Redis (a coordinated failover, a slot moved
    with its keys), so history must fill every hole: no gap frame at all.
    """
    node1, node2 = nodes(make_server, cluster, prefix)
    channels = channels_on_every_shard(cluster, prefix)
    clients = [await Client.open(node.url) for node in (node1, node2, node1, node2)]
    for client in clients:
        for channel in channels:
            await client.subscribe(channel)
    publisher = Publisher(
        RedisBackend(cluster=cluster_options(cluster), prefix=prefix, failover_wait=FAILOVER_WAIT),
        channels,
    )
    publisher.start()
    await eventually(lambda: len(publisher.published) >= 20, timeout=10)
    before = len(publisher.published)
    await asyncio.to_thread(fault, channels)
    faulted_at = time.monotonic()
    await eventually(lambda: publisher.after(faulted_at) >= 30, timeout=FAILOVER_WAIT + 10)
    publisher.join(FAILOVER_WAIT + 5)
    # No publish failed but, at most, the one in flight when a primary died (it may or may
    # not have run, so it is not tried again).
    assert len(publisher.failed) <= 1, publisher.failed
    for number, error in publisher.failed:
        assert "may or may not have been published" in error, error
        assert before - 1 <= number <= before + 1, (number, before)
    last = publisher.published[-1][0]
    published = {number for number, _, _ in publisher.published}
    for client in clients:
        numbers, gaps = await read_streams(client, channels, last)
        assert_delivered(numbers, gaps, published, before, lossless)
        await client.close()
    for node in (node1, node2):
        assert node.broker.connected
        # The fault did reach the node: a shard's channels were lost and caught up again.
        assert node.broker.reconnects >= 1  # type: ignore[attr-defined]
        assert node.hub.stats.resyncs >= 1
    publisher.backend.close()
    return publisher


async def test_cluster_failover_mid_stream(
    make_server: MakeServer, redis_cluster: RedisClusterNodes, prefix: str
) -> None:
    def failover(channels: list[str]) -> None:
        primary = shard_of(redis_cluster, prefix, channels[0])
        replica = redis_cluster.replica_of(primary)
        with contextlib.closing(replica.client()) as client:
            client.execute_command("CLUSTER FAILOVER")
        deadline = time.monotonic() + 15
        while shard_of(redis_cluster, prefix, channels[0]).port != replica.port:
            assert time.monotonic() < deadline, "CLUSTER FAILOVER did not happen"
            time.sleep(0.05)

    # CLUSTER FAILOVER waits for the replica to catch up: nothing is lost in Redis.
    await fault_mid_stream(make_server, redis_cluster, prefix, failover, lossless=True)


async def test_sigkill_of_a_primary_mid_stream(
    make_server: MakeServer, redis_cluster: RedisClusterNodes, prefix: str
) -> None:
    def kill(channels: list[str]) -> None:
        shard_of(redis_cluster, prefix, channels[0]).kill()

    # Replication is asynchronous: the last messages may die with the primary (then a gap).
    await fault_mid_stream(make_server, redis_cluster, prefix, kill, lossless=False)


async def test_resharding_a_busy_channel(
    make_server: MakeServer, redis_cluster: RedisClusterNodes, prefix: str
) -> None:
    moves: list[tuple[int, RedisServer, RedisServer]] = []

    def reshard(channels: list[str]) -> None:
        slot = key_slot(channel_key(prefix, channels[0]))
        source = redis_cluster.primary_for_slot(slot)
        destination = next(n for n in redis_cluster.primary_nodes() if n is not source)
        redis_cluster.move_slot(slot, source, destination)
        moves.append((slot, source, destination))

    try:
        # The channel's position and history move with its slot (MIGRATE).
        await fault_mid_stream(make_server, redis_cluster, prefix, reshard, lossless=True)
    finally:
        for slot, source, destination in moves:
            redis_cluster.move_slot(slot, destination, source)
