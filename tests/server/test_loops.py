"""The event loop a node makes for itself: asyncio's by default, uvloop's when asked for."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvloop
from django.core.exceptions import ImproperlyConfigured

from rtbridge.server import loops
from tests.server.helpers import Client


async def test_a_node_started_in_a_thread_runs_on_uvloop_when_asked(make_server: Any) -> None:
    server = make_server(options={"event_loop": "uvloop"})
    assert isinstance(server._loop, uvloop.Loop)
    client = await Client.open(server.url)
    await client.subscribe("room")
    assert await client.request("ping") == {"op": "pong", "id": 2}
    await client.close()


def test_the_default_is_asyncio() -> None:
    loop = loops.new_event_loop("asyncio")
    try:
        assert not isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


def test_run_on_uvloop_runs_the_coroutine_there() -> None:
    seen: list[object] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop())

    loops.run(main(), "uvloop")
    assert isinstance(seen[0], uvloop.Loop)


def test_uvloop_asked_for_but_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> None:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(loops, "import_module", missing)
    with pytest.raises(ImproperlyConfigured, match=r"pip install 'rtbridge\[uvloop\]'"):
        loops.new_event_loop("uvloop")
