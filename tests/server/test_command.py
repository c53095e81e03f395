"""``manage.py rtbridge_server`` and ``rtbridge serve`` as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rtbridge.backends.redis import RedisBackend
from rtbridge.messages import Message
from tests.server.helpers import Client
from tests.services import RedisServer, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = "tests.server.site_settings"


class Process:
    """A server subprocess on a free port, with its output in a file."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        # Closed by the spawn fixture after the process is gone.
        self.output = tempfile.TemporaryFile()  # noqa: SIM115
        full_env = {**os.environ, **(env or {})}
        full_env.pop("DJANGO_SETTINGS_MODULE", None)
        self.popen = subprocess.Popen(
            [*args, "--port", str(self.port)],
            cwd=ROOT,
            env=full_env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.port, timeout=20)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"server did not start:\n{self.text()}") from None

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/rtbridge/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        self.output.seek(0)
        return self.output.read().decode(errors="replace")

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.returncode


@pytest.fixture
def spawn() -> Iterator[Callable[..., Process]]:
    """Start server subprocesses; every one is stopped after the test."""
    processes: list[Process] = []

    def factory(args: list[str], env: dict[str, str] | None = None) -> Process:
        process = Process(args, env)
        processes.append(process)
        return process

    yield factory
    for process in processes:
        process.stop()
        process.output.close()


def serve(*extra: str) -> list[str]:
    return [sys.executable, "-m", "rtbridge", "serve", "--settings", SETTINGS, *extra]


def manage(*extra: str) -> list[str]:
    return [sys.executable, "-m", "django", "rtbridge_server", "--settings", SETTINGS, *extra]


def get(url: str, timeout: float = 10) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_signal_closes_clients_with_1001_and_exits_0(
    spawn: Callable[..., Process], signum: int
) -> None:
    process = spawn(serve("-v", "3"))
    clients = [await Client.open(process.ws) for _ in range(3)]
    await clients[0].subscribe("room")
    process.popen.send_signal(signum)
    for client in clients:
        code, reason = await client.closed(timeout=10)
        assert code == 1001
        assert "shutting down" in reason
    returncode = await asyncio.get_running_loop().run_in_executor(None, process.popen.wait, 10)
    assert returncode == 0
    output = process.text()
    # One DEBUG line per connection event, and the summary at INFO on exit.
    assert output.count("rtbridge: opened ") == 3
    assert "3 opened" in output
    assert "rtbridge server on ws://127.0.0.1" in output


async def test_with_django_serves_views_and_a_slow_view_does_not_block_sockets(
    spawn: Callable[..., Process],
) -> None:
    process = spawn(manage("--with-django"))
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, get, f"{process.http}/hello/") == (
        200,
        "hello from django",
    )
    client = await Client.open(process.ws)
    await client.subscribe("room")
    slow = loop.run_in_executor(None, get, f"{process.http}/slow/?seconds=3")
    await asyncio.sleep(0.3)  # the slow view is now sleeping in a worker thread
    started = time.monotonic()
    assert await client.request("ping") == {"op": "pong", "id": 2}
    # A view publishing with the local backend reaches the socket in the same process.
    status, _ = await loop.run_in_executor(None, get, f"{process.http}/publish/?channel=room&n=7")
    assert status == 200
    frame = (await client.messages(1))[0]
    assert (frame["event"], frame["data"], frame["seq"]) == ("created", {"n": 7}, 1)
    assert time.monotonic() - started < 1.5
    assert not slow.done()
    assert await slow == (200, "slow done")
    await client.close()


async def test_with_django_serves_static_files_when_asked(spawn: Callable[..., Process]) -> None:
    process = spawn(
        serve("--with-django"), env={"RTBRIDGE_TEST_SERVER": json.dumps({"serve_static": True})}
    )
    loop = asyncio.get_running_loop()
    status, body = await loop.run_in_executor(None, get, f"{process.http}/static/rtbridge-test.txt")
    assert (status, body.strip()) == (200, "static ok")


async def test_two_redis_nodes_from_the_command(
    spawn: Callable[..., Process], redis_server: RedisServer
) -> None:
    redis_env = {
        "RTBRIDGE_TEST_BACKEND": "redis",
        "RTBRIDGE_TEST_OPTIONS": json.dumps({"url": redis_server.url, "prefix": "cmd:"}),
    }
    node1 = spawn(manage(), env=redis_env)
    # The second node is configured for 'local' and switched to Redis by --redis-url; it
    # uses the default prefix, so the test publishes with that one too.
    node2 = spawn(serve("--redis-url", redis_server.url))
    first, second = await Client.open(node1.ws), await Client.open(node2.ws)
    await first.subscribe("room")
    await second.subscribe("room")
    RedisBackend(url=redis_server.url, prefix="cmd:").publish(Message("room", "one", 1))
    RedisBackend(url=redis_server.url).publish(Message("room", "two", 2))
    assert [f["event"] for f in await first.messages(1)] == ["one"]
    assert [f["event"] for f in await second.messages(1)] == ["two"]
    assert "broker: redis redis://127.0.0.1" in node1.text()
    await first.close()
    await second.close()


def run(args: list[str], env: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run(args, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=30)


def test_serve_without_settings_is_a_clear_usage_error() -> None:
    result = run([sys.executable, "-m", "rtbridge", "serve"])
    assert result.returncode == 2
    assert "--settings" in result.stderr and "DJANGO_SETTINGS_MODULE" in result.stderr


def test_demo_subcommand_hands_its_options_to_the_demo() -> None:
    result = run([sys.executable, "-m", "rtbridge", "demo", "--help"])
    assert result.returncode == 0
    assert "usage: rtbridge demo" in result.stdout and "--backend" in result.stdout
    listed = run([sys.executable, "-m", "rtbridge", "--help"])
    assert "demo" in listed.stdout and "serve" in listed.stdout


def test_bad_server_setting_fails_fast() -> None:
    result = run(
        [*serve(), "--port", str(free_port())],
        env={"RTBRIDGE_TEST_SERVER": json.dumps({"max_buffer_bytes": "big"})},
    )
    assert result.returncode == 1
    assert "max_buffer_bytes" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "backend, error",
    [
        ("nosuch.module.Backend", "cannot be imported"),
        ("tests.server.site_urls.urlpatterns", "not a subclass of"),
        ("redis", "RTBRIDGE_OPTIONS['url']='http://x' is not a Redis URL"),
    ],
)
def test_a_bad_backend_setting_fails_fast(backend: str, error: str) -> None:
    result = run(
        [*serve(), "--port", str(free_port())],
        env={"RTBRIDGE_TEST_BACKEND": backend, "RTBRIDGE_TEST_OPTIONS": '{"url": "http://x"}'},
    )
    assert result.returncode == 1
    assert error in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [serve, manage])
def test_port_in_use_is_a_clear_error(command: Callable[..., list[str]]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run([*command(), "--port", str(port)])
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_idle_server_exits_0_on_sigterm(spawn: Callable[..., Process]) -> None:
    started = time.monotonic()
    process = spawn(serve())
    assert process.stop() == 0
    assert time.monotonic() - started < 15
