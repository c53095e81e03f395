"""``rtbridge serve`` as a real process: SIGHUP restarts it in place, ``$PORT``, JSON logs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rtbridge.server.runner import StartupError, resolve_port
from tests.server.helpers import Client
from tests.server.test_command import ROOT, SETTINGS
from tests.services import free_port, wait_for_port


@pytest.fixture
def output() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory) / "server.log"


def start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    full_env = {**os.environ, **env}
    full_env.pop("DJANGO_SETTINGS_MODULE", None)
    with log.open("wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "rtbridge", "serve", "--settings", SETTINGS, *args],
            cwd=ROOT,
            env=full_env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


async def test_sighup_drains_then_restarts_in_place_on_port_from_env(output: Path) -> None:
    port = free_port()
    process = start(["-v", "3", "--log-format", "json"], output, {"PORT": str(port)})
    try:
        await asyncio.get_running_loop().run_in_executor(None, wait_for_port, port, "127.0.0.1", 20)
        url = f"ws://127.0.0.1:{port}/rtbridge/ws"
        before = await Client.open(url)
        await before.subscribe("room")
        process.send_signal(signal.SIGHUP)
        code, reason = await before.closed(timeout=10)
        assert code == 1001 and "shutting down" in reason
        # The same process (same PID) serves again: new code and settings, no supervisor.
        deadline = time.monotonic() + 20
        while True:
            try:
                after = await Client.open(url)
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not come back after SIGHUP"
                await asyncio.sleep(0.1)
        assert process.poll() is None
        assert after.socket_id.split(".")[0] != before.socket_id.split(".")[0]  # a new node
        await after.close()
    finally:
        returncode = await asyncio.get_running_loop().run_in_executor(None, stop, process)
    assert returncode == 0
    text = await asyncio.get_running_loop().run_in_executor(None, output.read_text)
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert events.count("node.started") == 2
    assert "node.reload" in events and events.count("node.draining") == 2
    closed = [line for line in lines if line["event"] == "socket.closed"]
    assert closed and closed[0]["peer"] == "127.0.0.1" and closed[0]["socket_id"]
    opened = [line for line in lines if line["event"] == "socket.opened"]
    assert {line["socket_id"] for line in opened} == {before.socket_id, after.socket_id}


def test_port_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORT", raising=False)
    assert resolve_port(None) == 8000
    monkeypatch.setenv("PORT", "5123")
    assert resolve_port(None) == 5123
    assert resolve_port(7000) == 7000  # --port wins
    for bad in ("http", "70000", "-1"):
        monkeypatch.setenv("PORT", bad)
        with pytest.raises(StartupError, match=rf"\$PORT='{bad}'"):
            resolve_port(None)
