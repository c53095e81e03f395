"""Redis Sentinel: Django publishers and server nodes follow a failover without manual action."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest

from rtbridge.backends.redis import RedisBackend
from rtbridge.exceptions import PublishError
from rtbridge.messages import Message
from rtbridge.redis_target import SentinelRedis, from_options
from rtbridge.server import RedisBroker, Server
from tests.server.helpers import Client, Publisher, eventually, join, member_ids
from tests.services import RedisSentinelSet

MakeServer = Callable[..., Server]

#: A publish waits this long for a new primary: well above the set's failover (~2-4 s).
FAILOVER_WAIT = 15.0


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests sharing the Sentinel set never collide."""
    return f"t{secrets.token_hex(4)}:"


def target(sentinel: RedisSentinelSet) -> SentinelRedis:
    found = from_options({"sentinel": sentinel.options()}, "test")
    assert isinstance(found, SentinelRedis)
    return found


def nodes(make_server: MakeServer, sentinel: RedisSentinelSet, prefix: str) -> list[Server]:
    options = {"reconnect_max_delay": 0.2, "presence_ttl": 3.0}
    return [
        make_server(redis_url=target(sentinel), prefix=prefix, options=options) for _ in range(2)
    ]


async def test_publish_and_presence_through_sentinel(
    make_server: MakeServer, redis_sentinel: RedisSentinelSet, prefix: str
) -> None:
    node1, node2 = nodes(make_server, redis_sentinel, prefix)
    assert "sentinel 'rtbridge-test' via 127.0.0.1:" in node1.broker.describe()
    ann, bob = await Client.open(node1.url), await Client.open(node2.url)
    await ann.subscribe("todo.todoitem")
    await bob.subscribe("todo.todoitem")
    backend = RedisBackend(sentinel=redis_sentinel.options(), prefix=prefix)
    backend.publish(Message("todo.todoitem", "created", {"id": 1}))
    await backend.apublish(Message("todo.todoitem", "updated", {"id": 1}))
    for client in (ann, bob):
        assert [f["event"] for f in await client.messages(2)] == ["created", "updated"]
    # Presence scripts run on the primary the sentinels name, shared by both nodes.
    channel = "presence-testapp.todoitem.7"
    assert member_ids(await join(ann, channel, "1")) == ["1"]
    assert member_ids(await join(bob, channel, "2")) == ["1", "2"]
    backend.close()
    await backend.aclose()
    await ann.close()
    await bob.close()


def assert_in_flight_only(failed: list[tuple[int, str]], killed_after: int) -> None:
    """Assert that the only failed publish, if any, is the one in flight at the kill."""
    assert len(failed) <= 1, failed
    for number, error in failed:
        assert "may or may not have been published" in error, error
        assert killed_after - 1 <= number <= killed_after + 1, (number, killed_after)


async def read_stream(client: Client, until: int, timeout: float) -> tuple[list[int], int]:
    """Read message numbers (and count gap frames) until number ``until`` arrives."""
    numbers: list[int] = []
    gaps = 0
    deadline = asyncio.get_running_loop().time() + timeout
    while not numbers or numbers[-1] < until:
        frame = await client.recv(max(0.01, deadline - asyncio.get_running_loop().time()))
        if frame["op"] == "message":
            numbers.append(frame["data"])
        elif frame["op"] == "gap":
            gaps += 1
    return numbers, gaps


async def test_sigkill_of_the_primary_mid_stream(
    make_server: MakeServer,
    redis_sentinel: RedisSentinelSet,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    node1, node2 = nodes(make_server, redis_sentinel, prefix)
    clients = [await Client.open(node.url) for node in (node1, node2, node1)]
    for client in clients:
        await client.subscribe("stream")
    publisher = Publisher(
        RedisBackend(sentinel=redis_sentinel.options(), prefix=prefix, failover_wait=FAILOVER_WAIT)
    )
    old_primary = redis_sentinel.primary()
    caplog.set_level(logging.WARNING)
    publisher.start()
    await eventually(lambda: len(publisher.published) >= 20, timeout=10)
    old_primary.kill()
    killed_at = time.monotonic()
    killed_after = publisher.count()
    # Publishing goes on through the failover; stop 30 messages after the new primary took one.
    await eventually(
        lambda: len([p for p in publisher.published if p[1] > killed_at]) >= 30,
        timeout=FAILOVER_WAIT + 5,
    )
    publisher.join(FAILOVER_WAIT + 5)
    await asyncio.to_thread(redis_sentinel.wait_for_new_primary, old_primary)

    # Publishers: no publish failed but, at most, the one in flight when the primary died
    # (it may or may not have run, so it is not tried again), and the slowest one (the
    # failover) was within the bound.
    assert_in_flight_only(publisher.failed, killed_after)
    longest = max(ended - started for _, started, ended in publisher.published)
    assert longest < FAILOVER_WAIT
    resumed = min(ended for _, started, ended in publisher.published if ended > killed_at)
    assert resumed - killed_at < 10  # down-after 1 s + election + promotion, with margin
    assert "did not run a command" in caplog.text  # the wait is logged, not silent

    # Nodes: they reconnected to the new primary by themselves.
    for node in (node1, node2):
        assert node.broker.connected
        assert node.broker.reconnects >= 1  # type: ignore[attr-defined]

    # Clients: every message in order, without duplicates; a message may be missing only
    # when the client was told (a gap frame) and only from the failover's window.
    last = publisher.published[-1][0]
    for client in clients:
        numbers, gaps = await read_stream(client, last, timeout=10)
        assert numbers == sorted(set(numbers)), "out of order or duplicated"
        missing = {n for n, _, _ in publisher.published} - set(numbers)
        if missing:
            assert gaps >= 1, f"lost {sorted(missing)} without a gap frame"
            assert min(missing) >= killed_after - 1, "lost a message from before the kill"
        assert set(range(20)) <= set(numbers)
        await client.close()
    publisher.backend.close()


async def test_publish_fails_loudly_when_no_primary_comes(redis_sentinel: RedisSentinelSet) -> None:
    # The sentinels know no primary by this name: the publish is tried again for
    # failover_wait, then fails, saying it did not run.
    options = redis_sentinel.options(service_name="no-such-service")
    backend = RedisBackend(sentinel=options, failover_wait=0.5)
    started = time.monotonic()
    with pytest.raises(PublishError) as info:
        backend.publish(Message("room", "e", 1))
    assert 0.5 <= time.monotonic() - started < 3
    assert info.value.retryable
    message = str(info.value)
    assert "sentinel 'no-such-service' via 127.0.0.1:" in message
    assert "it did not run; tried again for 0.5s" in message
    assert "rtb-data-secret" not in message and "rtb-sentinel-secret" not in message


async def test_node_follows_a_manual_failover(
    make_server: MakeServer, redis_sentinel: RedisSentinelSet, prefix: str
) -> None:
    # SENTINEL FAILOVER: the old primary stays up and becomes a replica. The sentinels close
    # its normal clients (publishers reconnect to the new primary) but not its pub/sub
    # clients, and only seconds later. Publisher and node ask the sentinels once a second and
    # move to the new primary by themselves.
    broker = RedisBroker(target(redis_sentinel), prefix, reconnect_max_delay=0.2)
    node = make_server(broker=broker)
    client = await Client.open(node.url)
    await client.subscribe("room")
    backend = RedisBackend(sentinel=redis_sentinel.options(), prefix=prefix, failover_wait=10)
    backend.publish(Message("room", "before", 0))
    before = (await client.messages(1))[0]
    assert before["event"] == "before"
    old_primary = redis_sentinel.primary()
    sentinel = redis_sentinel.sentinels[0].client()
    sentinel.execute_command("SENTINEL", "FAILOVER", redis_sentinel.service_name)
    sentinel.close()
    await asyncio.to_thread(redis_sentinel.wait_for_new_primary, old_primary)
    await eventually(lambda: broker.reconnects == 1 and broker.connected, timeout=10)
    backend.publish(Message("room", "after", 1))  # through the new primary
    # The history moved with the data: the next message continues the position, or the
    # client was told (gap) that it cannot.
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["op"] != "message":
        frame = await client.recv(timeout=10)
        if frame["op"] in ("message", "gap"):
            frames.append(frame)
    after = frames[-1]
    assert after["event"] == "after"
    assert (after["offset"], after["epoch"]) == (before["offset"] + 1, before["epoch"]) or any(
        frame["op"] == "gap" for frame in frames
    )
    # The node's pub/sub is on the new primary, not relayed by the demoted one.
    new_primary = redis_sentinel.primary()
    clients = new_primary.client().client_list(_type="pubsub")
    assert clients, "no pub/sub client on the new primary"
    await client.close()
    backend.close()


def test_sentinel_options_are_validated() -> None:
    def error(options: Any) -> str:
        with pytest.raises(Exception) as info:
            RedisBackend(**options)
        return str(info.value)

    assert "give one of 'url'" in error({"url": "redis://h", "sentinel": {}})
    assert "RTBRIDGE_OPTIONS['sentinel']['service_name']=None" in error(
        {"sentinel": {"sentinels": ["h:1"]}}
    )
    assert "RTBRIDGE_OPTIONS['sentinel']['sentinels']=[]" in error(
        {"sentinel": {"sentinels": [], "service_name": "m"}}
    )
    assert "has 'h:x', which is not an address" in error(
        {"sentinel": {"sentinels": ["h:x"], "service_name": "m"}}
    )
    assert "unknown key 'master'" in error({"sentinel": {"master": "m"}})
    assert "RTBRIDGE_OPTIONS['failover_wait']=-1" in error({"failover_wait": -1})
