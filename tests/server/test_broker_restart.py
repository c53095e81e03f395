"""A Redis restart seen by one node: presence members in the next ack, and the backoff cap."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from typing import Any

import pytest

from rtbridge.server import RedisBroker, Server
from rtbridge.server.brokers import reconnect_wait
from tests.server.helpers import Client, eventually, join, member_ids
from tests.server.test_presence_redis import CHANNEL
from tests.services import RedisServer, free_port

MakeServer = Callable[..., Server]


async def presence_and_gap_frames(client: Client, quiet: float) -> list[tuple[str, str]]:
    """Return the presence (action, member) and gap frames that arrive within ``quiet``."""
    frames: list[tuple[str, str]] = []
    while True:
        try:
            frame = await client.recv(timeout=quiet)
        except asyncio.TimeoutError:
            return frames
        if frame["op"] == "presence":
            frames.append((frame["action"], frame["member"]["id"]))
        elif frame["op"] == "gap":
            frames.append(("gap", frame["channel"]))


async def test_the_ack_after_a_redis_restart_lists_every_present_member(
    make_server: MakeServer, fresh_redis: RedisServer
) -> None:
    # The default presence_ttl (15 s): the node's own refresh comes only every 5 s, so the
    # members must be back because the broker reconnected, not because a refresh ran.
    node = make_server(redis_url=fresh_redis.url, options={"reconnect_max_delay": 0.2})
    ann, bob = await Client.open(node.url), await Client.open(node.url)
    await join(ann, CHANNEL, "1")
    await join(bob, CHANNEL, "2")
    assert (await ann.recv_op("presence"))["member"]["id"] == "2"
    fresh_redis.stop()
    fresh_redis.start()  # empty: no persistence
    await eventually(lambda: node.broker.reconnects == 1 and node.broker.connected, timeout=10)
    # At once: a newcomer's ack has everyone, and a member subscribing again (what the JS
    # client does on the gap frame) too.
    carol = await Client.open(node.url)
    assert member_ids(await join(carol, CHANNEL, "3")) == ["1", "2", "3"]
    assert member_ids(await join(bob, CHANNEL, "2")) == ["1", "2", "3"]
    # Nobody present is ever reported gone (a re-announced join is harmless: clients that
    # have the member already ignore it), and the gap comes after the members are back.
    for client in (ann, bob):
        frames = await presence_and_gap_frames(client, quiet=1.0)
        assert not [f for f in frames if f[0] == "leave"], frames
        assert ("gap", CHANNEL) in frames
    for client in (ann, bob, carol):
        await client.close()


class _NoEvents:
    """The broker's BrokerEvents for a node with no subscribers."""

    def channels(self) -> list[str]:
        return []

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected broker event {name}")


async def test_reconnect_attempts_are_never_further_apart_than_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The worst jitter every time: the waits must still stay within reconnect_max_delay.
    monkeypatch.setattr(random, "random", lambda: 0.999)
    cap = 0.3
    broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0", reconnect_max_delay=cap)
    await broker.start(_NoEvents(), wait=0.05)  # type: ignore[arg-type]
    attempts: list[float] = []
    loop = asyncio.get_running_loop()
    open_pubsub = broker._client.pubsub

    def counted_pubsub() -> Any:
        attempts.append(loop.time())
        return open_pubsub()

    broker._client.pubsub = counted_pubsub
    await asyncio.sleep(3.0)
    await broker.stop()
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert len(gaps) >= 5, attempts
    # Past the ramp-up (0.1, 0.2, then the cap), each wait is at most the cap (+ the
    # attempt itself: a refused connection on loopback).
    assert max(gaps) <= cap + 0.1, gaps


@pytest.mark.parametrize("delay", [0.1, 0.4, 5.0, 60.0])
def test_reconnect_wait_is_jittered_below_the_cap(delay: float) -> None:
    waits = [reconnect_wait(delay, 5.0) for _ in range(200)]
    assert max(waits) <= min(delay, 5.0)
    assert min(waits) >= min(delay, 5.0) / 2
