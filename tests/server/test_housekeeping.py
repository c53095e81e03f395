"""Housekeeping: staggered heartbeats and idle checks (a slot per tick), and the loop-lag probe."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from typing import Any

import pytest

from rtbridge.server import Server
from rtbridge.server.config import ServerConfig
from rtbridge.server.housekeeping import LoopLagProbe, Sweeper
from rtbridge.server.protocol import HEARTBEAT_FRAME, CloseCode
from rtbridge.server.revocations import Revocations
from rtbridge.server.stats import LOOP_LAG_BOUNDS, NodeStats
from tests.server.helpers import Client


class FakeConnection:
    """A subscriber that records what the sweeper did to it."""

    def __init__(self, socket_id: str, hub: FakeHub, last_activity: float) -> None:
        self.socket_id = socket_id
        self.hub = hub
        self.last_activity = last_activity
        self.heartbeats: list[float] = []
        self.closed_with: int | None = None

    def send(self, frame: bytes) -> bool:
        assert frame == HEARTBEAT_FRAME
        self.heartbeats.append(self.hub.now)
        self.hub.touched += 1
        return True

    def close(self, code: int, reason: str) -> None:
        self.closed_with = code
        self.hub.touched += 1
        del self.hub.connections[self.socket_id]


class FakeHub:
    def __init__(self) -> None:
        self.connections: dict[str, Any] = {}
        self.now = 0.0
        self.touched = 0

    def open(self, sweeper: Sweeper, socket_id: str) -> FakeConnection:
        connection = FakeConnection(socket_id, self, self.now)
        self.connections[socket_id] = connection
        sweeper.track(socket_id)
        return connection


class NoRevocations(Revocations):
    def __init__(self) -> None:
        self.expired_at: list[float] = []

    def expire(self, now: float) -> None:
        self.expired_at.append(now)


def make_sweeper(heartbeat: float = 1.0, idle_timeout: float = 3.5) -> tuple[Sweeper, FakeHub]:
    hub = FakeHub()
    config = ServerConfig.load({"heartbeat": heartbeat, "idle_timeout": idle_timeout})
    sweeper = Sweeper(config, hub, NoRevocations(), NodeStats())  # type: ignore[arg-type]
    return sweeper, hub


def run_ticks(sweeper: Sweeper, hub: FakeHub, count: int) -> list[int]:
    """Run ``count`` ticks; return how many connections each one touched."""
    touched = []
    for _ in range(count):
        hub.now += sweeper.tick
        hub.touched = 0
        sweeper.visit(hub.now)
        touched.append(hub.touched)
    return touched


def test_every_connection_gets_one_heartbeat_per_interval_and_no_tick_visits_them_all() -> None:
    sweeper, hub = make_sweeper()
    connections = [hub.open(sweeper, f"n.{i}") for i in range(1000)]
    for connection in connections:
        connection.last_activity = math.inf  # always active: only heartbeats
    assert sweeper.slots == 100
    touched = run_ticks(sweeper, hub, 3 * sweeper.slots)
    # Each tick touches one slot's share, never every socket.
    assert max(touched) == math.ceil(1000 / sweeper.slots)
    for connection in connections:
        beats = connection.heartbeats
        assert len(beats) == 3
        # The first within one interval of opening, then one per interval.
        assert beats[0] <= 1.0 + 1e-9
        assert all(abs(b - a - 1.0) < 1e-9 for a, b in itertools.pairwise(beats))


def test_connections_opened_at_once_are_spread_over_the_slots() -> None:
    sweeper, hub = make_sweeper()
    run_ticks(sweeper, hub, 37)  # the wheel is somewhere in its turn
    for i in range(250):
        hub.open(sweeper, f"n.{i}")  # a reconnect storm: all in the same instant
    sizes = sweeper.slot_sizes()
    assert max(sizes) - min(sizes) <= 1


def test_a_silent_connection_is_closed_at_its_visit_after_the_idle_timeout() -> None:
    sweeper, hub = make_sweeper(heartbeat=1.0, idle_timeout=3.5)
    silent = hub.open(sweeper, "n.silent")
    chatty = hub.open(sweeper, "n.chatty")
    closed_at = None
    while closed_at is None and hub.now < 10:
        chatty.last_activity = hub.now
        run_ticks(sweeper, hub, 1)
        if silent.closed_with is not None:
            closed_at = hub.now
    assert silent.closed_with == CloseCode.IDLE_TIMEOUT
    assert closed_at is not None and 3.5 <= closed_at <= 3.5 + 1.0 + 1e-9
    assert chatty.closed_with is None
    # The wheel forgets a closed connection at its slot's next visit (no reference kept).
    run_ticks(sweeper, hub, sweeper.slots)
    assert sum(sweeper.slot_sizes()) == 1


def test_old_revocations_are_expired_once_per_turn() -> None:
    sweeper, hub = make_sweeper()
    run_ticks(sweeper, hub, 2 * sweeper.slots)
    assert isinstance(sweeper.revocations, NoRevocations)
    assert len(sweeper.revocations.expired_at) == 2


def test_short_heartbeats_get_fewer_slots_not_shorter_ticks() -> None:
    sweeper, _ = make_sweeper(heartbeat=0.1, idle_timeout=0.6)
    assert (sweeper.slots, sweeper.tick) == (10, pytest.approx(0.01))


async def test_a_real_server_heartbeats_every_socket_within_the_interval(
    make_server: Any,
) -> None:
    interval = 0.4
    server: Server = make_server(options={"heartbeat": interval, "idle_timeout": 2.0})

    async def heartbeats(client: Client, until: float) -> list[float]:
        arrivals = []
        while (left := until - time.monotonic()) > 0:
            try:
                await client.recv_op("heartbeat", timeout=left)
            except asyncio.TimeoutError:
                break
            arrivals.append(time.monotonic())
        return arrivals

    clients: list[Client] = []
    readers = []
    opened_at = []
    for _ in range(20):
        clients.append(await Client.open(server.url))
        opened_at.append(time.monotonic())
        # Read from the start, so each heartbeat is timed when it arrives.
        readers.append(asyncio.ensure_future(heartbeats(clients[-1], opened_at[-1] + 3 * interval)))
    arrivals = await asyncio.gather(*readers)
    for opened, beats in zip(opened_at, arrivals, strict=True):
        assert len(beats) >= 2
        # The first within an interval of opening (plus scheduling slack), then one per interval.
        assert beats[0] - opened <= interval + 0.2
        for earlier, later in itertools.pairwise(beats):
            assert later - earlier == pytest.approx(interval, abs=0.15)
    # Staggered: the sockets' first heartbeats went out over many ticks, not in one sweep.
    firsts = sorted(beats[0] for beats in arrivals)
    assert firsts[-1] - firsts[0] > 0.1
    for client in clients:
        await client.close()


def test_loop_lag_histogram_counts_each_lag_in_its_bucket() -> None:
    stats = NodeStats()
    for lag in (0.0004, 0.003, 0.003, 0.2, 7.0, -0.001):
        stats.record_loop_lag(lag)
    assert stats.loop_lag_count == 6
    assert stats.loop_lag_max == 7.0
    assert stats.loop_lag_buckets[0] == 2  # <= 1 ms (a negative lag counts as none)
    assert stats.loop_lag_buckets[LOOP_LAG_BOUNDS.index(0.005)] == 2
    assert stats.loop_lag_buckets[LOOP_LAG_BOUNDS.index(0.25)] == 1
    assert stats.loop_lag_buckets[-1] == 1  # above the last bound
    assert "loop lag max 7000.0 ms" in stats.summary(0, 0)


async def test_loop_lag_probe_sees_a_callback_that_holds_the_loop() -> None:
    stats = NodeStats()
    probe = LoopLagProbe(stats, interval=0.01)
    probe.start()
    try:
        await asyncio.sleep(0.05)
        assert stats.loop_lag_count >= 2
        # A callback that holds the loop for 120 ms.
        asyncio.get_running_loop().call_soon(time.sleep, 0.12)
        await asyncio.sleep(0.15)
        assert stats.loop_lag_max >= 0.1
    finally:
        probe.stop()
    count = stats.loop_lag_count
    await asyncio.sleep(0.03)
    assert stats.loop_lag_count == count  # stopped


async def test_the_server_runs_its_probe(server: Server) -> None:
    await asyncio.sleep(0.2)
    assert server.stats.loop_lag_count > 0
