"""Presence, whispers and revocation across server nodes sharing a real Redis."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import time
from collections.abc import Callable
from unittest import mock

import pytest
import redis
from django.core import signing

from rtbridge.backends.redis import RedisBackend
from rtbridge.messages import Message
from rtbridge.redis_wire import presence_key, presence_nodes_key, revocation_key
from rtbridge.server import RedisBroker, Server
from tests.server.helpers import Client, join, member_ids, token
from tests.server.test_command import Process, manage, spawn  # noqa: F401 (fixture)
from tests.services import RedisServer

MakeServer = Callable[..., Server]
CHANNEL = "presence-testapp.todoitem.7"
TTL = 1.5


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing one Redis never see each other."""
    return f"t{secrets.token_hex(4)}:"


def two_nodes(make_server: MakeServer, url: str, prefix: str) -> list[Server]:
    options = {"presence_ttl": TTL}
    return [make_server(redis_url=url, prefix=prefix, options=options) for _ in range(2)]


async def presence_frames(client: Client, quiet: float = 0.3) -> list[tuple[str, str]]:
    """Return the (action, member id) of the presence frames that arrive within ``quiet``."""
    await client.request("ping")
    frames: list[tuple[str, str]] = []
    while True:
        try:
            frame = await client.recv_op("presence", timeout=quiet)
        except asyncio.TimeoutError:
            return frames
        frames.append((frame["action"], frame["member"]["id"]))


async def test_presence_agrees_across_nodes_and_is_per_user(
    make_server: MakeServer, redis_server: RedisServer, prefix: str
) -> None:
    node1, node2 = two_nodes(make_server, redis_server.url, prefix)
    ann1 = await Client.open(node1.url)
    bob2 = await Client.open(node2.url)
    assert member_ids(await join(ann1, CHANNEL, "1")) == ["1"]
    assert member_ids(await join(bob2, CHANNEL, "2")) == ["1", "2"]
    assert await presence_frames(ann1) == [("join", "2")]  # from the other node
    # Ann opens a second tab on node 2: nobody is told, and both nodes list her once.
    ann2 = await Client.open(node2.url)
    assert member_ids(await join(ann2, CHANNEL, "1")) == ["1", "2"]
    carol1 = await Client.open(node1.url)
    assert member_ids(await join(carol1, CHANNEL, "3")) == ["1", "2", "3"]
    assert await presence_frames(bob2) == [("join", "3")]
    assert await presence_frames(ann1) == [("join", "3")]
    assert await presence_frames(ann2) == [("join", "3")]
    # Ann's first tab closes: she is still there (node 2). Her last tab closes: leave.
    await ann1.close()
    assert await presence_frames(bob2) == []
    await ann2.request("unsubscribe", channel=CHANNEL)
    assert await presence_frames(bob2) == [("leave", "1")]
    assert await presence_frames(carol1) == [("leave", "1")]
    # The Redis hash holds one entry per connection, and the agreed members.
    raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
    entries = raw.hgetall(presence_key(prefix, CHANNEL))
    assert sorted(str(k).split("|")[1] for k in entries if k != "#v") == ["2", "3"]
    for client in (ann2, bob2, carol1):
        await client.close()


async def test_many_tabs_join_at_once_on_both_nodes_give_one_join(
    make_server: MakeServer, redis_server: RedisServer, prefix: str
) -> None:
    node1, node2 = two_nodes(make_server, redis_server.url, prefix)
    watcher = await Client.open(node1.url)
    await join(watcher, CHANNEL, "9")
    tabs = [await Client.open(node.url) for node in (node1, node2) for _ in range(4)]
    acks = await asyncio.gather(*(join(tab, CHANNEL, "5") for tab in tabs))
    assert all(member_ids(ack) == ["5", "9"] for ack in acks)
    assert await presence_frames(watcher) == [("join", "5")]
    await asyncio.gather(*(tab.close() for tab in tabs))
    assert await presence_frames(watcher, quiet=1.0) == [("leave", "5")]
    await watcher.close()


async def test_killed_node_members_leave_within_the_bound(
    make_server: MakeServer,
    redis_server: RedisServer,
    prefix: str,
    spawn: Callable[..., Process],  # noqa: F811
) -> None:
    env = {
        "RTBRIDGE_TEST_BACKEND": "redis",
        "RTBRIDGE_TEST_OPTIONS": json.dumps({"url": redis_server.url, "prefix": prefix}),
        "RTBRIDGE_TEST_SERVER": json.dumps({"presence_ttl": TTL}),
    }
    doomed = spawn(manage(), env=env)
    survivor = make_server(redis_url=redis_server.url, prefix=prefix, options={"presence_ttl": TTL})
    watcher = await Client.open(survivor.url)
    await join(watcher, CHANNEL, "9")
    victims = [await Client.open(doomed.ws) for _ in range(2)]
    await join(victims[0], CHANNEL, "1")
    await join(victims[1], CHANNEL, "2")
    assert sorted(await presence_frames(watcher)) == [("join", "1"), ("join", "2")]
    doomed.popen.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    leaves = [await watcher.recv_op("presence", timeout=4 * TTL) for _ in range(2)]
    elapsed = time.monotonic() - killed_at
    assert sorted((f["action"], f["member"]["id"]) for f in leaves) == [
        ("leave", "1"),
        ("leave", "2"),
    ]
    # Documented bound: presence_ttl + presence_ttl / 3 (+ scheduling slack).
    assert elapsed < TTL * 4 / 3 + 2.0, elapsed
    late = await Client.open(survivor.url)
    assert member_ids(await join(late, CHANNEL, "3")) == ["3", "9"]
    await watcher.close()
    await late.close()


async def test_a_sweep_in_several_pipelines_reaches_every_presence_channel(
    make_server: MakeServer,
    redis_server: RedisServer,
    prefix: str,
    spawn: Callable[..., Process],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The survivor sweeps its 5 presence channels in pipelines of 2 (SWEEP_BATCH), so one
    # refresh takes three round trips and never holds the loop for all channels at once.
    monkeypatch.setattr("rtbridge.server.presence.SWEEP_BATCH", 2)
    env = {
        "RTBRIDGE_TEST_BACKEND": "redis",
        "RTBRIDGE_TEST_OPTIONS": json.dumps({"url": redis_server.url, "prefix": prefix}),
        "RTBRIDGE_TEST_SERVER": json.dumps({"presence_ttl": TTL}),
    }
    doomed = spawn(manage(), env=env)
    survivor = make_server(redis_url=redis_server.url, prefix=prefix, options={"presence_ttl": TTL})
    channels = [f"presence-testapp.todoitem.{n}" for n in range(5)]
    watcher = await Client.open(survivor.url)
    victim = await Client.open(doomed.ws)
    for channel in channels:
        await join(watcher, channel, "9")
        await join(victim, channel, "1")
    joined = [await watcher.recv_op("presence", timeout=4 * TTL) for _ in channels]
    assert sorted(f["channel"] for f in joined) == channels
    doomed.popen.send_signal(signal.SIGKILL)
    leaves = [await watcher.recv_op("presence", timeout=4 * TTL) for _ in channels]
    assert sorted((f["channel"], f["action"], f["member"]["id"]) for f in leaves) == [
        (channel, "leave", "1") for channel in channels
    ]
    await watcher.close()


async def test_whispers_cross_nodes(
    make_server: MakeServer, redis_server: RedisServer, prefix: str
) -> None:
    node1, node2 = two_nodes(make_server, redis_server.url, prefix)
    ann, bob, ann_tab2 = (
        await Client.open(node1.url),
        await Client.open(node2.url),
        await Client.open(node1.url),
    )
    for client, user in ((ann, "1"), (bob, "2"), (ann_tab2, "1")):
        await join(client, CHANNEL, user)
    await ann.request("whisper", channel=CHANNEL, event="typing", data={"field": "text"})
    for client in (bob, ann_tab2):  # every other connection, including Ann's other tab
        frame = await client.recv_op("whisper")
        assert (frame["data"], frame["user_id"]) == ({"field": "text"}, "1")
    await ann.request("ping")
    assert not [f for f in ann._backlog if f["op"] == "whisper"]
    for client in (ann, bob, ann_tab2):
        await client.close()


async def test_revocation_across_nodes(
    make_server: MakeServer, redis_server: RedisServer, prefix: str
) -> None:
    node1, node2 = two_nodes(make_server, redis_server.url, prefix)
    private = "private-testapp.todolist.1"
    ann1, ann2, bob2 = (
        await Client.open(node1.url),
        await Client.open(node2.url),
        await Client.open(node2.url),
    )
    await join(ann1, private, "1")
    replay = token(ann2.socket_id, private, "1")
    assert (await ann2.request("subscribe", channel=private, auth=replay))["op"] == "ack"
    await join(bob2, private, "2")
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    issued_before = int(time.time()) - 5
    backend.revoke("1", private)
    for client in (ann1, ann2):
        assert (await client.recv_op("revoked"))["channel"] == private
    backend.publish(Message(private, "after", 1))
    assert [f["event"] for f in await bob2.messages(1)] == ["after"]
    # The replayed token is refused on any node, and also on a node started after the revoke.
    refused = await ann2.request("subscribe", channel=private, auth=replay)
    assert (refused["code"], refused["detail"]) == (4403, "revoked")
    node3 = make_server(redis_url=redis_server.url, prefix=prefix)
    ann3 = await Client.open(node3.url)
    with mock.patch.object(  # signed a few seconds before the revocation
        signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(issued_before)
    ):
        stale = token(ann3.socket_id, private, "1")
    answer = await ann3.request("subscribe", channel=private, auth=stale)
    assert answer.get("detail") == "revoked"
    ttl = redis.Redis.from_url(redis_server.url).ttl(revocation_key(prefix, "1", private))
    assert 3500 < ttl <= 3600
    for client in (ann1, ann2, bob2, ann3):
        await client.close()


async def test_presence_comes_back_after_redis_loses_its_data(
    make_server: MakeServer, fresh_redis: RedisServer
) -> None:
    options = {"presence_ttl": TTL, "reconnect_max_delay": 0.2}
    node1, node2 = (make_server(redis_url=fresh_redis.url, options=options) for _ in range(2))
    ann, bob = await Client.open(node1.url), await Client.open(node2.url)
    await join(ann, CHANNEL, "1")
    await join(bob, CHANNEL, "2")
    assert await presence_frames(ann) == [("join", "2")]
    fresh_redis.stop()
    fresh_redis.start()  # empty: no persistence
    # The nodes find they were given up for dead and add their entries again.
    deadline = time.monotonic() + 4 * TTL
    while True:
        carol = await Client.open(node1.url)
        members = member_ids(await join(carol, CHANNEL, "3"))
        await carol.close()
        if members == ["1", "2", "3"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert members == ["1", "2", "3"]
    # Events still reach clients whose snapshots predate the restart (versions never go back).
    await bob.close()
    frames = await presence_frames(ann, quiet=1.0)
    assert ("leave", "2") in frames
    await ann.close()


async def test_presence_subscribe_while_redis_is_frozen(
    make_server: MakeServer, fresh_redis: RedisServer
) -> None:
    # A ttl long enough that the node is still alive after the freeze: the entry that could
    # not be written is added back because the join failed, not because the node lapsed.
    broker = RedisBroker(fresh_redis.url, presence_ttl=6.0, command_timeout=0.5)
    node = make_server(broker=broker)
    watcher = await Client.open(node.url)
    await join(watcher, CHANNEL, "9")
    assert fresh_redis.process is not None
    fresh_redis.process.send_signal(signal.SIGSTOP)
    try:
        ann = await Client.open(node.url)
        # Acknowledged (after the command timeout) with the member alone.
        assert member_ids(await join(ann, CHANNEL, "1")) == ["1"]
    finally:
        fresh_redis.process.send_signal(signal.SIGCONT)
    joined = await watcher.recv_op("presence", timeout=10)  # at the next refresh (2 s)
    assert (joined["action"], joined["member"]["id"]) == ("join", "1")
    late = await Client.open(node.url)
    assert member_ids(await join(late, CHANNEL, "3")) == ["1", "3", "9"]
    for client in (ann, watcher, late):
        await client.close()


async def test_a_broker_built_in_python_keeps_its_node_alive_within_its_own_ttl(
    make_server: MakeServer, redis_server: RedisServer, prefix: str
) -> None:
    # RTBRIDGE_SERVER keeps its presence_ttl (15 s); the node must still sweep (and so keep
    # itself alive on) its channels every TTL / 3, or others would take it for dead between.
    node = make_server(broker=RedisBroker(redis_server.url, prefix, presence_ttl=TTL))
    client = await Client.open(node.url)
    await join(client, CHANNEL, "1")
    await asyncio.sleep(2 * TTL)
    raw = redis.Redis.from_url(redis_server.url)
    alive_until = raw.zscore(presence_nodes_key(prefix, CHANNEL), node.node_id)
    seconds, micros = raw.time()
    raw.close()
    assert alive_until is not None and alive_until > seconds * 1000 + micros / 1000
    await client.close()
