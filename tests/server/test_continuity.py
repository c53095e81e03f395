"""Continuity on the self-hosted server: positions, resume and catch-up, with real processes.

Two ``rtbridge_server`` nodes on one ``redis-server``, a publisher process streaming numbered
messages through ``RedisBackend``, and black-box WebSocket clients that resume with
``since`` after every lost connection: every client must end with every offset exactly once,
in order, whatever happens to its socket or its node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rtbridge.backends.redis import RedisBackend
from rtbridge.messages import Message
from rtbridge.redis_wire import position_key
from tests.server.test_command import ROOT, Process, manage
from tests.services import RedisServer

# Nodes and publisher keep enough history for a client away for several seconds at 1,000/s.
HISTORY = {"size": 20_000, "ttl": 600}
_POSITION = re.compile(r'"offset":(\d+),"epoch":"([^"]+)"')


@pytest.fixture
def prefix() -> str:
    return f"c{secrets.token_hex(4)}:"


@pytest.fixture
def nodes(redis_server: RedisServer, prefix: str) -> Iterator[Callable[[], Process]]:
    """Start ``rtbridge_server`` processes on one Redis; each is stopped after the test."""
    started: list[Process] = []
    env = {
        "RTBRIDGE_TEST_BACKEND": "redis",
        "RTBRIDGE_TEST_OPTIONS": json.dumps({"url": redis_server.url, "prefix": prefix}),
        "RTBRIDGE_TEST_HISTORY": json.dumps(HISTORY),
        # Python test clients read slower than the node writes during a 1,000/s stream to
        # 100 sockets; the node must buffer rather than drop them as slow consumers.
        "RTBRIDGE_TEST_SERVER": json.dumps({"max_buffer_bytes": 32 * 1024 * 1024}),
    }

    def start() -> Process:
        process = Process(manage(), env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
        process.output.close()


class Publisher:
    """The stream publisher subprocess (``tests/server/stream_publisher.py``)."""

    def __init__(self, url: str, prefix: str, channel: str, count: int, rate: float) -> None:
        self.count = count
        self.popen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.server.stream_publisher",
                url,
                prefix,
                channel,
                str(count),
                str(rate),
                json.dumps(HISTORY),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    async def wait(self, timeout: float = 60) -> str:
        loop = asyncio.get_running_loop()
        output, _ = await loop.run_in_executor(None, self.popen.communicate, None, timeout)
        assert self.popen.returncode == 0, output
        return output

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(5)


class Follower:
    """A client of one channel that applies messages in offset order and resumes by itself.

    It subscribes with ``since`` (its last applied position) after every lost socket, to the
    next URL in turn. ``offsets`` is every offset it received, in arrival order (duplicates
    and holes included, so the test sees them); ``acks`` every subscribe answer.
    """

    def __init__(self, channel: str, urls: list[str]) -> None:
        self.channel = channel
        self.urls = urls
        self.turn = 0
        self.position: tuple[int, str] | None = None
        self.offsets: list[int] = []
        #: Every subscribe answer, with the URL of the node that gave it.
        self.acks: list[tuple[str, dict[str, Any]]] = []
        self.gaps: list[str] = []
        self.socket: ClientConnection | None = None

    @property
    def url(self) -> str:
        return self.urls[self.turn % len(self.urls)]

    async def connect(self) -> None:
        """Connect (moving to the next URL while one refuses) and subscribe, resuming."""
        while True:
            try:
                self.socket = await connect(self.url, max_size=None, max_queue=None)
                break
            except OSError:
                self.turn += 1
                await asyncio.sleep(0.05)
        welcome = json.loads(await self.socket.recv())
        assert welcome["op"] == "welcome" and welcome["protocol"] == 2
        request: dict[str, Any] = {"op": "subscribe", "id": 1, "channel": self.channel}
        if self.position is not None:
            request["since"] = {"offset": self.position[0], "epoch": self.position[1]}
        await self.socket.send(json.dumps(request))
        while True:
            frame = json.loads(await self.socket.recv())
            if frame["op"] == "ack":
                break
            assert frame["op"] == "heartbeat", frame
        self.acks.append((self.url, frame))
        self.position = (frame["offset"], frame["epoch"])

    async def follow(self, last: int, *, cut_at: int | None = None, away: float = 0) -> None:
        """Read until offset ``last``; at offset ``cut_at`` drop the socket for ``away`` s."""
        await self.connect()
        while self.position is None or self.position[0] < last:
            assert self.socket is not None
            try:
                text = await self.socket.recv()
            except ConnectionClosed:
                self.turn += 1
                await self.connect()
                continue
            assert isinstance(text, str)
            if text.startswith('{"op":"heartbeat"'):
                with contextlib.suppress(ConnectionClosed):
                    await self.socket.send('{"op":"heartbeat"}')
                continue
            if text.startswith('{"op":"gap"'):
                self.gaps.append(text)
                frame = json.loads(text)
                self.position = (frame["offset"], frame["epoch"])
                continue
            match = _POSITION.search(text)
            assert match is not None and text.startswith(('{"op":"message"', '{"op":"skip"')), text
            offset = int(match[1])
            self.offsets.append(offset)
            if offset % 100 == 0:
                # recv() returns buffered frames without suspending: let the others run.
                await asyncio.sleep(0)
            self.position = (offset, match[2])
            if offset == cut_at:
                # Cut: the socket just goes away, no closing handshake; back later.
                self.socket.transport.abort()
                await asyncio.sleep(away)
                await self.connect()
        assert self.socket is not None
        await self.socket.close()


def _assert_exactly_once_in_order(followers: list[Follower], count: int) -> None:
    expected = list(range(1, count + 1))
    for follower in followers:
        assert not follower.gaps
        assert follower.offsets == expected, _difference(follower.offsets, expected)
        for _url, ack in follower.acks[1:]:
            assert ack["recovered"] is True, ack


def _difference(got: list[int], expected: list[int]) -> str:
    for index, (offset, wanted) in enumerate(zip(got, expected, strict=False)):
        if offset != wanted:
            return f"offset {offset} at index {index}, where {wanted} belongs"
    return f"{len(got)} offsets of {len(expected)}"


async def _subscribed(followers: list[Follower]) -> None:
    # Every follower has its first ack (its subscription is in place) before the stream.
    for _ in range(500):
        if all(follower.acks for follower in followers):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("followers did not subscribe in time")


async def test_sigkill_a_node_mid_stream_every_client_gets_every_offset_once(
    nodes: Callable[[], Process], redis_server: RedisServer, prefix: str
) -> None:
    first, second = nodes(), nodes()
    channel = "stream"
    # 50 clients on each node; those of the first resume on the second when it dies.
    followers = [Follower(channel, [first.ws, second.ws]) for _ in range(50)]
    followers += [Follower(channel, [second.ws, first.ws]) for _ in range(50)]
    tasks = [asyncio.ensure_future(f.follow(10_000)) for f in followers]
    await _subscribed(followers)
    on_first = [f for f in followers if f.acks[-1][0] == first.ws]
    assert len(on_first) >= 40  # (a connect that timed out under load went to the second)
    publisher = Publisher(redis_server.url, prefix, channel, 10_000, 1_000)
    # Killed from a thread when 3,000 messages are out, whatever the busy clients' loop does.
    killer = threading.Thread(target=_kill_at, args=(first, redis_server.url, prefix, channel))
    killer.start()
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 90)
        await publisher.wait()
    finally:
        publisher.stop()
        killer.join()
    assert first.popen.returncode == -signal.SIGKILL
    _assert_exactly_once_in_order(followers, 10_000)
    for follower in on_first:
        # It resumed once, on the second node, from where it was.
        assert [url for url, _ack in follower.acks[-2:]] == [first.ws, second.ws]
        assert 0 < follower.acks[-1][1]["offset"] < 10_000


def _kill_at(node: Process, url: str, prefix: str, channel: str, offset: int = 3_000) -> None:
    counter = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 60
        while int(counter.hget(position_key(prefix, channel), "offset") or 0) < offset:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
    finally:
        counter.close()
    node.popen.send_signal(signal.SIGKILL)
    node.popen.wait(10)


async def test_a_socket_cut_for_5_seconds_resumes_exactly(
    nodes: Callable[[], Process], redis_server: RedisServer, prefix: str
) -> None:
    # 20 clients (10 per node) rather than 100: each one replays ~5,000 messages after the
    # cut, and the Python clients, not the nodes, would set the pace of the test.
    first, second = nodes(), nodes()
    channel = "stream"
    followers = [Follower(channel, [node.ws]) for node in (first, second) for _ in range(10)]
    tasks = [asyncio.ensure_future(f.follow(8_000, cut_at=1_000, away=5)) for f in followers]
    await _subscribed(followers)
    publisher = Publisher(redis_server.url, prefix, channel, 8_000, 1_000)
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        await publisher.wait()
    finally:
        publisher.stop()
    _assert_exactly_once_in_order(followers, 8_000)
    for follower in followers:
        # Away for 5 s at 1,000 messages/s: the resume replayed thousands from history.
        assert len(follower.acks) == 2 and follower.acks[1][1]["offset"] == 1_000
        assert follower.acks[1][1]["recovered"] is True


async def test_fresh_node_race_subscribe_right_after_start(
    nodes: Callable[[], Process], redis_server: RedisServer, prefix: str
) -> None:
    # On protocol 1 a client subscribing within ~0.5 s of a node's start got its ack, lost
    # some of the next messages (the node was not yet listening to Redis) and then a gap.
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    for attempt in range(3):
        channel = f"fresh{attempt}"
        node = nodes()  # returns as soon as the port accepts connections
        follower = Follower(channel, [node.ws])
        await follower.connect()
        ack = follower.acks[0][1]
        assert ack["offset"] == 0 and ack["epoch"] != "unknown"
        for number in range(20):
            backend.publish(Message(channel, "n", number))
        assert follower.socket is not None
        frames = [json.loads(await asyncio.wait_for(follower.socket.recv(), 10)) for _ in range(20)]
        assert [(f["op"], f["offset"], f["epoch"]) for f in frames] == [
            ("message", number, ack["epoch"]) for number in range(1, 21)
        ]
        with contextlib.suppress(asyncio.TimeoutError):
            extra = await asyncio.wait_for(follower.socket.recv(), 0.3)
            assert '"op":"gap"' not in extra, extra
        await follower.socket.close()
        node.stop()
