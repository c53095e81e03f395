"""Resuming with ``since`` on in-process nodes: replay, hole fill, bounds, forged positions, auth."""

from __future__ import annotations

import asyncio
import secrets
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from rtbridge.backends.redis import RedisBackend
from rtbridge.conf import HistorySettings
from rtbridge.messages import Message
from rtbridge.redis_wire import position_key
from rtbridge.server import RedisBroker, Server
from tests.server.helpers import Client, eventually, join, token
from tests.services import RedisServer

MakeServer = Callable[..., Server]
PRIVATE = "private-testapp.todolist.1"


def history(size: int = 1000, ttl: float = 600, enabled: bool = True) -> HistorySettings:
    return HistorySettings(enabled=enabled, size=size, ttl=ttl, store="database")


@pytest.fixture
def prefix() -> str:
    return f"r{secrets.token_hex(4)}:"


async def resume(
    client: Client, channel: str, since: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    """Subscribe with ``since``; return the answer (ack or error)."""
    return await client.request("subscribe", channel=channel, since=since, **fields)


async def frames_until(client: Client, last: int, timeout: float = 5) -> list[dict[str, Any]]:
    """Return the message/skip/gap frames up to (and including) offset ``last``."""
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1].get("offset", -1) < last:
        frame = await client.recv(timeout)
        if frame["op"] in ("message", "skip", "gap"):
            frames.append(frame)
    return frames


async def quiet(client: Client, seconds: float = 0.3) -> list[dict[str, Any]]:
    """Return whatever else arrives within ``seconds`` (heartbeats left out)."""
    extra = []
    try:
        while True:
            frame = await client.recv(seconds)
            if frame["op"] != "heartbeat":
                extra.append(frame)
    except asyncio.TimeoutError:
        return extra


# The in-memory broker (the ``local`` backend) --------------------------------------------


async def test_memory_resume_replays_what_was_missed_then_live(make_server: MakeServer) -> None:
    server = make_server()
    first = await Client.open(server.url)
    ack = await first.subscribe("room")
    epoch = ack["epoch"]
    for number in range(1, 6):
        server.publish(Message("room", "n", number))
    assert [f["offset"] for f in await first.messages(5)] == [1, 2, 3, 4, 5]
    await first.close()
    for number in range(6, 11):
        server.publish(Message("room", "n", number))
    await eventually(lambda: server.hub.subscribers("room") == 0)
    # Back after a lost connection: from offset 3, six messages and then live ones.
    again = await Client.open(server.url)
    answer = await resume(again, "room", {"offset": 3, "epoch": epoch})
    assert answer == {
        "op": "ack",
        "id": 1,
        "channel": "room",
        "offset": 3,
        "epoch": epoch,
        "seq": 3,
        "recovered": True,
    }
    server.publish(Message("room", "n", 11))
    frames = await frames_until(again, 11)
    assert [(f["op"], f["offset"], f["data"]) for f in frames] == [
        ("message", n, n) for n in range(4, 12)
    ]
    assert {f["epoch"] for f in frames} == {epoch}
    # Nothing missed: recovered, and nothing replayed.
    third = await Client.open(server.url)
    answer = await resume(third, "room", {"offset": 11, "epoch": epoch})
    assert (answer["recovered"], answer["offset"]) == (True, 11)
    assert await quiet(third) == []
    for client in (again, third):
        await client.close()


async def test_memory_history_is_bounded_by_size_and_age(make_server: MakeServer) -> None:
    server = make_server(history=history(size=5, ttl=0.5))
    client = await Client.open(server.url)
    epoch = (await client.subscribe("room"))["epoch"]
    for number in range(1, 11):
        server.publish(Message("room", "n", number))
    await client.messages(10)
    # Offsets 6..10 are kept: from 5 it recovers, from 4 it cannot (6 is the oldest).
    answer = await resume(client, "room", {"offset": 5, "epoch": epoch})
    assert (answer["recovered"], answer["offset"]) == (True, 5)
    assert [f["offset"] for f in await frames_until(client, 10)] == [6, 7, 8, 9, 10]
    answer = await resume(client, "room", {"offset": 4, "epoch": epoch})
    assert (answer["recovered"], answer["offset"], answer["epoch"]) == (False, 10, epoch)
    assert await quiet(client) == []
    # Older than the ttl: gone, so not recovered either.
    await asyncio.sleep(0.6)
    answer = await resume(client, "room", {"offset": 9, "epoch": epoch})
    assert (answer["recovered"], answer["offset"]) == (False, 10)
    await client.close()


async def test_memory_history_off_never_recovers(make_server: MakeServer) -> None:
    server = make_server(history=history(enabled=False))
    client = await Client.open(server.url)
    epoch = (await client.subscribe("room"))["epoch"]
    server.publish(Message("room", "n", 1))
    assert (await client.messages(1))[0]["offset"] == 1  # positions are still given
    for since in (0, 1):
        answer = await resume(client, "room", {"offset": since, "epoch": epoch})
        assert (answer["recovered"], answer["offset"]) == (False, 1)
    await client.close()


async def test_each_process_start_is_a_new_epoch(make_server: MakeServer) -> None:
    first, second = make_server(), make_server()
    one, other = await Client.open(first.url), await Client.open(second.url)
    epoch = (await one.subscribe("room"))["epoch"]
    first.publish(Message("room", "n", 1))
    await one.messages(1)
    # A client moving to another in-process server (another history) cannot resume there.
    answer = await resume(other, "room", {"offset": 1, "epoch": epoch})
    assert answer["recovered"] is False and answer["epoch"] != epoch
    assert answer["offset"] == 0
    await one.close()
    await other.close()


# Forged and malformed positions ----------------------------------------------------------


async def test_forged_and_malformed_positions(make_server: MakeServer) -> None:
    server = make_server()
    client = await Client.open(server.url)
    epoch = (await client.subscribe("room"))["epoch"]
    server.publish(Message("room", "n", 1))
    await client.messages(1)
    # Beyond the top in the same epoch: no client can have seen it.
    answer = await resume(client, "room", {"offset": 99, "epoch": epoch})
    assert (answer["op"], answer["recovered"], answer["offset"]) == ("ack", False, 1)
    # An epoch the channel never had.
    answer = await resume(client, "room", {"offset": 1, "epoch": "zzzzzzzzzzzz"})
    assert (answer["recovered"], answer["offset"], answer["epoch"]) == (False, 1, epoch)
    for since in ({"offset": -1, "epoch": epoch}, {"offset": "1", "epoch": epoch}, "1", {}):
        answer = await resume(client, "room", since)  # type: ignore[arg-type]
        assert (answer["op"], answer["code"]) == ("error", 4409), answer
        assert "since" in answer["reason"]
    # The subscription itself is untouched by the refusals.
    server.publish(Message("room", "n", 2))
    assert (await client.messages(1))[0]["offset"] == 2
    await client.close()


# Hole fill: subscribing again with since on a subscription the socket has ------------------


async def test_hole_fill_on_an_existing_subscription_gives_no_duplicate(
    make_server: MakeServer,
) -> None:
    server = make_server()
    client = await Client.open(server.url)
    epoch = (await client.subscribe("room"))["epoch"]
    stop = threading.Event()

    def stream() -> None:
        number = 0
        while not stop.is_set():
            number += 1
            server.publish(Message("room", "n", number, exclude=None))
            time.sleep(0.001)

    publisher = threading.Thread(target=stream)
    publisher.start()
    try:
        first = await frames_until(client, 200)
        # Ask again from offset 150 while the stream goes on (as a client with a hole does).
        await client.send(
            {
                "op": "subscribe",
                "id": 99,
                "channel": "room",
                "since": {"offset": 150, "epoch": epoch},
            }
        )
        after: list[dict[str, Any]] = []
        while True:
            frame = await client.recv()
            if frame["op"] == "ack" and frame.get("id") == 99:
                ack = frame
                break
            if frame["op"] == "message":
                first.append(frame)
        assert (ack["recovered"], ack["offset"]) == (True, 150)
        while len(after) < 300:
            frame = await client.recv()
            if frame["op"] == "message":
                after.append(frame)
    finally:
        stop.set()
        publisher.join()
    offsets = [f["offset"] for f in after]
    # Right after the ack: 151, 152, ... each once, in order, into the live stream.
    assert offsets == list(range(151, 151 + len(offsets)))
    before = [f["offset"] for f in first]
    assert before == list(range(1, 1 + len(before)))
    await client.close()


async def test_the_excluded_sender_gets_skips_in_a_replay(make_server: MakeServer) -> None:
    server = make_server()
    client = await Client.open(server.url)
    epoch = (await client.subscribe("room"))["epoch"]
    server.publish(Message("room", "mine", 1, exclude=client.socket_id))
    server.publish(Message("room", "theirs", 2))
    await frames_until(client, 2)
    answer = await resume(client, "room", {"offset": 0, "epoch": epoch})
    assert answer["recovered"] is True
    frames = await frames_until(client, 2)
    assert [(f["op"], f["offset"]) for f in frames] == [("skip", 1), ("message", 2)]
    await client.close()


# Protected channels: a resume is a subscribe ---------------------------------------------


async def test_resume_on_a_protected_channel_needs_the_same_token(
    make_server: MakeServer,
) -> None:
    server = make_server()
    client = await Client.open(server.url)
    good = token(client.socket_id, PRIVATE, "1")
    epoch = (await client.request("subscribe", channel=PRIVATE, auth=good))["epoch"]
    server.publish(Message(PRIVATE, "secret", 1))
    await client.messages(1)
    await client.close()
    server.publish(Message(PRIVATE, "secret", 2))
    thief = await Client.open(server.url)
    since = {"offset": 0, "epoch": epoch}
    # Without a token, with another socket's token, or another channel's: refused, no replay.
    for auth in (None, good, token(thief.socket_id, "private-testapp.todolist.2", "1")):
        fields = {} if auth is None else {"auth": auth}
        answer = await resume(thief, PRIVATE, since, **fields)
        assert (answer["op"], answer["code"]) == ("error", 4403), answer
    assert [f for f in await quiet(thief) if f["op"] == "message"] == []
    # A revoked user is refused too, with this socket's own (older) token.
    own = token(thief.socket_id, PRIVATE, "1")
    server.revoke("1", PRIVATE)
    await eventually(lambda: server.revocations.seen("1", PRIVATE) is not None)
    answer = await resume(thief, PRIVATE, since, auth=own)
    assert (answer["op"], answer["detail"]) == ("error", "revoked")
    assert [f for f in await quiet(thief) if f["op"] == "message"] == []
    # Somebody allowed resumes and gets both messages.
    allowed = await Client.open(server.url)
    answer = await resume(allowed, PRIVATE, since, auth=token(allowed.socket_id, PRIVATE, "2"))
    assert answer["recovered"] is True
    assert [f["data"] for f in await frames_until(allowed, 2)] == [1, 2]
    await thief.close()
    await allowed.close()


# Redis-fed nodes -------------------------------------------------------------------------


async def test_redis_resume_on_another_node_and_trims(
    make_server: MakeServer, redis_server: RedisServer, prefix: str, settings: Any
) -> None:
    settings.RTBRIDGE_HISTORY = {"size": 5, "ttl": 600}
    bounds = history(size=5)
    first = make_server(redis_url=redis_server.url, prefix=prefix, history=bounds)
    second = make_server(redis_url=redis_server.url, prefix=prefix, history=bounds)
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    client = await Client.open(first.url)
    epoch = (await client.subscribe("room"))["epoch"]
    for number in range(1, 4):
        backend.publish(Message("room", "n", number))
    await client.messages(3)
    await client.close()
    for number in range(4, 8):
        backend.publish(Message("room", "n", number))
    other = await Client.open(second.url)
    answer = await resume(other, "room", {"offset": 3, "epoch": epoch})
    assert (answer["recovered"], answer["offset"]) == (True, 3)
    assert [f["data"] for f in await frames_until(other, 7)] == [4, 5, 6, 7]
    # Kept: 3..7 (size 5). From 1 it cannot recover.
    answer = await resume(other, "room", {"offset": 1, "epoch": epoch})
    assert (answer["recovered"], answer["offset"], answer["epoch"]) == (False, 7, epoch)
    assert await quiet(other) == []
    await other.close()


async def test_redis_history_trimmed_by_age(
    make_server: MakeServer, redis_server: RedisServer, prefix: str, settings: Any
) -> None:
    settings.RTBRIDGE_HISTORY = {"size": 100, "ttl": 1}
    node = make_server(redis_url=redis_server.url, prefix=prefix, history=history(ttl=1))
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    client = await Client.open(node.url)
    epoch = (await client.subscribe("room"))["epoch"]
    backend.publish(Message("room", "n", 1))
    await asyncio.sleep(1.2)
    backend.publish(Message("room", "n", 2))  # the node keeps the position alive meanwhile
    await client.messages(2)
    answer = await resume(client, "room", {"offset": 0, "epoch": epoch})
    assert (answer["recovered"], answer["offset"], answer["epoch"]) == (False, 2, epoch)
    answer = await resume(client, "room", {"offset": 1, "epoch": epoch})
    assert answer["recovered"] is True
    await client.close()


async def test_redis_restart_without_persistence_changes_the_epoch(
    make_server: MakeServer, fresh_redis: RedisServer
) -> None:
    node = make_server(redis_url=fresh_redis.url, options={"reconnect_max_delay": 0.2})
    backend = RedisBackend(url=fresh_redis.url)
    client = await Client.open(node.url)
    epoch = (await client.subscribe("room"))["epoch"]
    backend.publish(Message("room", "n", 1))
    await client.messages(1)
    await client.close()
    fresh_redis.stop()
    fresh_redis.start()
    await eventually(lambda: node.broker.connected, timeout=10)
    backend.publish(Message("room", "n", 2))
    # The client comes back with its old position: another epoch, so it must refetch.
    again = await Client.open(node.url)
    answer = await resume(again, "room", {"offset": 1, "epoch": epoch})
    assert answer["recovered"] is False
    assert answer["epoch"] != epoch and answer["offset"] == 1
    assert await quiet(again) == []
    await again.close()


async def test_a_node_that_saw_redis_go_back_renews_the_epoch(
    make_server: MakeServer, redis_server: RedisServer, prefix: str
) -> None:
    # Redis restored from an older snapshot looks like a lower offset in the same epoch: the
    # node that delivered the higher one renews the epoch rather than let offsets be reused.
    node = make_server(redis_url=redis_server.url, prefix=prefix)
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    client = await Client.open(node.url)
    epoch = (await client.subscribe("room"))["epoch"]
    for number in range(1, 4):
        backend.publish(Message("room", "n", number))
    await client.messages(3)
    raw = redis.Redis.from_url(redis_server.url)
    raw.hset(position_key(prefix, "room"), "offset", 1)  # as the snapshot had it
    raw.close()
    node.call_soon(node.hub.resync, ["room"])
    gap = await client.recv_op("gap")
    assert gap["epoch"] != epoch and gap["offset"] == 0
    backend.publish(Message("room", "n", 4))
    frame = (await client.messages(1))[0]
    assert (frame["offset"], frame["epoch"], frame["data"]) == (1, gap["epoch"], 4)
    await client.close()


async def test_after_a_broker_outage_only_presence_channels_get_a_gap(
    make_server: MakeServer, fresh_redis: RedisServer
) -> None:
    # Redis frozen, then back with its data: messages are proven continuous, but presence
    # events are in no history, so presence subscribers must fetch the members again.
    broker = RedisBroker(fresh_redis.url, reconnect_max_delay=0.2, ping_interval=0.3)
    node = make_server(broker=broker)
    client = await Client.open(node.url)
    await client.subscribe("room")
    await join(client, "presence-room", "1")
    assert fresh_redis.process is not None
    fresh_redis.process.send_signal(signal.SIGSTOP)
    try:
        await eventually(lambda: not broker.connected, timeout=5)
    finally:
        fresh_redis.process.send_signal(signal.SIGCONT)
    gap = await client.recv_op("gap", timeout=10)
    assert (gap["channel"], gap["offset"], gap["recovered"]) == ("presence-room", 0, False)
    RedisBackend(url=fresh_redis.url).publish(Message("room", "n", 1))
    assert (await client.messages(1))[0]["offset"] == 1
    assert [f for f in await quiet(client) if f["op"] == "gap"] == []
    await client.close()


async def test_server_publish_on_a_redis_node_reaches_every_node(
    make_server: MakeServer, redis_server: RedisServer, prefix: str
) -> None:
    first = make_server(redis_url=redis_server.url, prefix=prefix)
    second = make_server(redis_url=redis_server.url, prefix=prefix)
    client = await Client.open(second.url)
    epoch = (await client.subscribe("room"))["epoch"]
    first.publish(Message("room", "n", 1))  # through Redis, with its position
    frame = (await client.messages(1))[0]
    assert (frame["offset"], frame["epoch"], frame["data"]) == (1, epoch, 1)
    await client.close()


async def test_resumes_at_one_moment_share_a_read_and_each_gets_its_own_messages(
    make_server: MakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server(history=history(size=20))
    reads: list[Any] = []
    replay = server.broker.replay

    async def counted(channel: str, since: Any, **options: Any) -> Any:
        if not options.get("delivered"):
            reads.append(since)
        return await replay(channel, since, **options)

    monkeypatch.setattr(server.broker, "replay", counted)
    watcher = await Client.open(server.url)
    epoch = (await watcher.subscribe("room"))["epoch"]
    for number in range(1, 31):
        server.publish(Message("room", "n", number))
    await watcher.messages(30)

    async def resume_together(starts: list[int]) -> list[Client]:
        clients = [await Client.open(server.url) for _ in starts]
        for client, start in zip(clients, starts, strict=True):
            since = {"offset": start, "epoch": epoch}
            await client.send({"op": "subscribe", "id": 1, "channel": "room", "since": since})
        return clients

    # Kept: 11..30. Three resumes at one moment share one read, from the lowest (12).
    clients = await resume_together([25, 12, 20])
    for client, start in zip(clients, [25, 12, 20], strict=True):
        ack = await client.recv_op("ack")
        assert (ack["recovered"], ack["offset"]) == (True, start)
        assert [f["offset"] for f in await frames_until(client, 30)] == list(range(start + 1, 31))
    assert [since.offset for since in reads] == [12]
    # With one from a trimmed position among them, the others still recover.
    reads.clear()
    more = await resume_together([5, 22])
    ack = await more[0].recv_op("ack")
    assert (ack["recovered"], ack["offset"]) == (False, 30)
    ack = await more[1].recv_op("ack")
    assert (ack["recovered"], ack["offset"]) == (True, 22)
    assert [f["offset"] for f in await frames_until(more[1], 30)] == list(range(23, 31))
    assert [since.offset for since in reads] == [5, 22]
    for client in (watcher, *clients, *more):
        await client.close()
