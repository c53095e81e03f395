"""Server nodes fed by a real Redis: several nodes, ref-counted subscriptions, Redis restarts."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
from collections.abc import Callable
from typing import Any

import pytest
import redis

from rtbridge.backends.redis import RedisBackend
from rtbridge.exceptions import PublishError
from rtbridge.messages import Message
from rtbridge.redis_wire import channel_key
from rtbridge.server import RedisBroker, Server
from tests.server.helpers import Client, eventually
from tests.services import RedisServer

MakeServer = Callable[..., Server]


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing one Redis never see each other."""
    return f"t{secrets.token_hex(4)}:"


def numsub(url: str, channel: bytes) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.pubsub_numsub(channel)[0][1])
    finally:
        client.close()


async def test_two_nodes_get_a_message_published_once(
    make_server: MakeServer, redis_server: RedisServer, prefix: str
) -> None:
    nodes = [make_server(redis_url=redis_server.url, prefix=prefix) for _ in range(2)]
    clients = [await Client.open(node.url) for node in nodes for _ in range(3)]
    for client in clients:
        await client.subscribe("todo.todoitem")
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    backend.publish(Message("todo.todoitem", "created", {"id": 1}))
    # exclude works across nodes: only the socket with that id misses the message.
    backend.publish(Message("todo.todoitem", "updated", {"id": 1}, exclude=clients[4].socket_id))
    for number, client in enumerate(clients):
        expected = ["created"] if number == 4 else ["created", "updated"]
        frames = await client.messages(len(expected))
        assert [f["event"] for f in frames] == expected
        assert frames[0]["data"] == {"id": 1}
    backend.publish(Message("todo.todoitem", "deleted", {"id": 1}))
    assert (await clients[4].messages(1))[0]["seq"] == 3  # the jump shows what it missed
    for client in clients:
        await client.close()


async def test_redis_subscription_lives_while_a_local_connection_wants_it(
    make_server: MakeServer, redis_server: RedisServer, prefix: str
) -> None:
    node = make_server(redis_url=redis_server.url, prefix=prefix)
    redis_channel = channel_key(prefix, "room")
    assert numsub(redis_server.url, redis_channel) == 0
    first, second = await Client.open(node.url), await Client.open(node.url)
    await first.subscribe("room")
    await second.subscribe("room")
    assert numsub(redis_server.url, redis_channel) == 1  # one per node, not per socket
    await first.request("unsubscribe", channel="room")
    assert numsub(redis_server.url, redis_channel) == 1
    await second.close()  # closing drops its subscriptions too
    await eventually(lambda: numsub(redis_server.url, redis_channel) == 0)
    await first.subscribe("room")
    assert numsub(redis_server.url, redis_channel) == 1
    await first.close()


async def test_async_publish_and_many_channels(
    make_server: MakeServer, redis_server: RedisServer, prefix: str
) -> None:
    node = make_server(redis_url=redis_server.url, prefix=prefix)
    client = await Client.open(node.url)
    await client.subscribe("a")
    await client.subscribe("b")
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    await backend.apublish(Message(["a", "b"], "both", [1]))
    await backend.apublish_many([Message("a", "n", i) for i in range(50)])
    frames = await client.messages(52)
    assert sorted(f["channel"] for f in frames[:2]) == ["a", "b"]
    assert [f["data"] for f in frames[2:]] == list(range(50))
    assert [f["seq"] for f in frames if f["channel"] == "a"] == list(range(1, 52))
    await backend.aclose()
    await client.close()


async def _first_frame_after_raw_bodies(
    node: Server, url: str, prefix: str, *bodies: bytes
) -> dict[str, Any]:
    """Publish ``bodies`` as they are on ``room``, then a real message; return the next frame."""
    client = await Client.open(node.url)
    await client.subscribe("room")
    raw = redis.Redis.from_url(url)
    for body in bodies:
        raw.publish(channel_key(prefix, "room"), body)
    raw.close()
    RedisBackend(url=url, prefix=prefix).publish(Message("room", "ok", 1))
    try:
        return await client.recv()
    finally:
        await client.close()


async def test_foreign_bodies_on_redis_are_dropped(
    make_server: MakeServer, redis_server: RedisServer, prefix: str
) -> None:
    node = make_server(redis_url=redis_server.url, prefix=prefix)
    frame = await _first_frame_after_raw_bodies(
        node, redis_server.url, prefix, b"not an rtbridge body"
    )
    assert (frame["event"], frame["seq"]) == ("ok", 1)
    assert node.broker.dropped == 1  # type: ignore[attr-defined]


async def test_malformed_whispers_on_redis_are_dropped_without_a_reconnect(
    make_server: MakeServer, redis_server: RedisServer, prefix: str
) -> None:
    node = make_server(redis_url=redis_server.url, prefix=prefix)
    bodies = (b"rtw1\ntoo few lines", b"rtw1\nev\n\xff\n\n{}")  # the sender id is not ASCII
    frame = await _first_frame_after_raw_bodies(node, redis_server.url, prefix, *bodies)
    assert (frame["op"], frame["event"], frame["seq"]) == ("message", "ok", 1)  # no gap first
    assert node.broker.dropped == 2  # type: ignore[attr-defined]
    assert node.broker.reconnects == 0  # type: ignore[attr-defined]


async def test_redis_restart_mid_stream(
    make_server: MakeServer, fresh_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # fresh_redis has no persistence: a restart loses every position, so the epochs change.
    node = make_server(redis_url=fresh_redis.url, options={"reconnect_max_delay": 0.2})
    watcher = await Client.open(node.url)
    epoch = (await watcher.subscribe("stream"))["epoch"]
    backend = RedisBackend(url=fresh_redis.url, socket_connect_timeout=0.5)
    quiet = RedisBackend(url=fresh_redis.url, socket_connect_timeout=0.5, fail_silently=True)
    for number in range(5):
        backend.publish(Message("stream", "n", number))
    assert [f["data"] for f in await watcher.messages(5)] == [0, 1, 2, 3, 4]

    fresh_redis.stop()
    await eventually(lambda: not node.broker.connected)
    with pytest.raises(PublishError) as info:
        backend.publish(Message("stream", "n", "lost"))
    assert info.value.retryable
    assert fresh_redis.url.replace("/0", "") in str(info.value)
    assert backend.unpublished == 1  # counted (and logged) even though it raised
    with caplog.at_level(logging.WARNING, logger="rtbridge.backends"):
        quiet.send([Message("stream", "n", "dropped")])
    assert (quiet.failed_count, quiet.unpublished) == (1, 1)
    assert "dropped 1 message" in caplog.text
    assert "1 message(s) not published" in caplog.text
    # The socket stays open while Redis is away; a new subscription is acknowledged at once,
    # at a position nobody has (a gap follows once Redis is back).
    assert await watcher.request("ping") == {"op": "pong", "id": 2}
    during = await watcher.subscribe("during-outage")
    assert (during["offset"], during["epoch"]) == (0, "unknown")

    fresh_redis.start()
    gaps = {}
    for _ in range(2):
        gap = await watcher.recv_op("gap", timeout=10)
        gaps[gap["channel"]] = gap
    assert set(gaps) == {"stream", "during-outage"}
    new_epoch = gaps["stream"]["epoch"]
    assert new_epoch != epoch
    assert gaps["stream"] == {
        "op": "gap",
        "channel": "stream",
        "offset": 0,
        "epoch": new_epoch,
        "recovered": False,
    }
    assert gaps["during-outage"]["offset"] == 0
    backend.publish(Message("stream", "n", 5))
    backend.publish(Message("during-outage", "n", 6))
    frames = await watcher.messages(2)
    assert [(f["channel"], f["data"], f["offset"], f["epoch"]) for f in frames] == [
        ("stream", 5, 1, new_epoch),
        ("during-outage", 6, 1, gaps["during-outage"]["epoch"]),
    ]
    assert node.broker.reconnects == 1  # type: ignore[attr-defined]
    await watcher.close()


async def test_node_starts_while_redis_is_down(
    make_server: MakeServer, fresh_redis: RedisServer
) -> None:
    fresh_redis.stop()
    node = make_server(redis_url=fresh_redis.url, options={"reconnect_max_delay": 0.2})
    client = await Client.open(node.url)
    await client.send({"op": "subscribe", "id": 1, "channel": "room"})
    ack = await client.recv_op("ack", timeout=10)  # answered after waiting 5 s for Redis
    assert (ack["offset"], ack["epoch"]) == (0, "unknown")
    assert not node.broker.connected
    fresh_redis.start()
    gap = await client.recv_op("gap", timeout=10)
    assert (gap["channel"], gap["offset"], gap["recovered"]) == ("room", 0, False)
    RedisBackend(url=fresh_redis.url).publish(Message("room", "first", 1))
    frame = (await client.messages(1))[0]
    assert (frame["event"], frame["offset"], frame["epoch"]) == ("first", 1, gap["epoch"])
    await client.close()


async def test_frozen_redis_is_noticed_by_ping_and_continuity_is_proven(
    make_server: MakeServer, fresh_redis: RedisServer
) -> None:
    broker = RedisBroker(fresh_redis.url, reconnect_max_delay=0.2, ping_interval=0.3)
    node = make_server(broker=broker)
    client = await Client.open(node.url)
    await client.subscribe("room")
    backend = RedisBackend(url=fresh_redis.url)
    backend.publish(Message("room", "before", 1))
    assert (await client.messages(1))[0]["offset"] == 1
    assert fresh_redis.process is not None
    fresh_redis.process.send_signal(signal.SIGSTOP)  # the TCP connection stays open, silent
    try:
        await eventually(lambda: not broker.connected, timeout=5)
    finally:
        fresh_redis.process.send_signal(signal.SIGCONT)
    await eventually(lambda: broker.connected and node.stats.resyncs >= 2, timeout=10)
    # Redis kept its data: the node proves that nothing was missed, so no gap.
    backend.publish(Message("room", "back", 2))
    frame = await client.recv_op("message", timeout=10)
    assert (frame["event"], frame["offset"]) == ("back", 2)
    assert node.stats.gaps == 0
    await client.close()


async def test_a_burst_read_from_redis_lets_the_loop_run_between_messages(
    make_server: MakeServer,
    redis_server: RedisServer,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Buffered messages are read without waiting; without a yield the whole burst was one
    # callback (170 ms for 1,000 messages to 1,000 sockets). With a slice of 0 the reader
    # yields before each message, so a callback scheduled at the first runs before the last.
    monkeypatch.setattr("rtbridge.server.brokers.READ_SLICE_SECONDS", 0.0)
    node = make_server(redis_url=redis_server.url, prefix=prefix)
    client = await Client.open(node.url)
    await client.subscribe("burst")
    delivered: list[int] = []
    seen_by_marker: list[int] = []
    deliver = node.hub.deliver

    def counting(*args: Any, **kwargs: Any) -> int:
        if not delivered:
            asyncio.get_running_loop().call_soon(lambda: seen_by_marker.append(len(delivered)))
        delivered.append(1)
        return deliver(*args, **kwargs)

    node.hub.deliver = counting  # type: ignore[method-assign]
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    backend.publish_many([Message("burst", "tick", {"n": n}) for n in range(200)])
    assert [f["data"]["n"] for f in await client.messages(200)] == list(range(200))
    assert seen_by_marker and seen_by_marker[0] < 10
    await client.close()
