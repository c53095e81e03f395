"""``LocalBackend``: publishing into the server running in this process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import rtbridge
from rtbridge.backends.local import LocalBackend
from rtbridge.exceptions import PublishError
from rtbridge.messages import Message
from rtbridge.server import Server
from tests.server.helpers import Client


@pytest.fixture
def server() -> Iterator[Server]:
    """An in-process server with the in-memory broker, stopped after the test."""
    server = Server().start()
    yield server
    server.stop()


def test_no_server_in_this_process_is_a_clear_error() -> None:
    backend = LocalBackend()
    with pytest.raises(PublishError) as info:
        backend.publish(Message("a", "e", 1))
    text = str(info.value)
    assert "RTBRIDGE_BACKEND='local'" in text
    assert "rtbridge_server --with-django" in text
    assert "RTBRIDGE_BACKEND='redis'" in text
    assert not info.value.retryable


async def test_no_server_async() -> None:
    with pytest.raises(PublishError):
        await LocalBackend().apublish(Message("a", "e", 1))


def test_fail_silently_counts() -> None:
    backend = LocalBackend(fail_silently=True)
    backend.send([Message("a", "e", 1)])
    assert backend.failed_count == 1


async def test_publish_from_request_threads_reaches_sockets(server: Server, settings: Any) -> None:
    client = await Client.open(server.url)
    await client.subscribe("todo.todoitem")
    settings.RTBRIDGE_BACKEND = "local"

    def request_thread(number: int) -> None:
        rtbridge.publish("todo.todoitem", "created", {"thread": number})

    threads = [threading.Thread(target=request_thread, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    frames = await client.messages(8)
    assert sorted(f["data"]["thread"] for f in frames) == list(range(8))
    assert [f["seq"] for f in frames] == list(range(1, 9))
    await rtbridge.apublish("todo.todoitem", "updated", 1, exclude=client.socket_id)
    await rtbridge.apublish("todo.todoitem", "deleted", 2)
    assert [f["event"] for f in await client.messages(1)] == ["deleted"]
    await client.close()


async def test_stopped_server_is_not_used(server: Server) -> None:
    await asyncio.get_running_loop().run_in_executor(None, server.stop)
    with pytest.raises(PublishError):
        LocalBackend().publish(Message("a", "e", 1))


def test_client_config_shape(settings: Any) -> None:
    assert LocalBackend().client_config() == {
        "backend": "local",
        "url": None,
        "path": "/rtbridge/ws",
    }
    settings.RTBRIDGE_SERVER = {"public_url": "ws://127.0.0.1:9000"}
    # public_url is a base URL: the socket path is appended (docs/server.md).
    assert LocalBackend().client_config()["url"] == "ws://127.0.0.1:9000/rtbridge/ws"
    settings.RTBRIDGE_SERVER = {"public_url": "ws://127.0.0.1:9000/rtbridge/ws"}
    assert LocalBackend().client_config()["url"] == "ws://127.0.0.1:9000/rtbridge/ws"


def test_revoke_without_a_server_is_a_clear_error() -> None:
    with pytest.raises(PublishError, match="rtbridge_server"):
        LocalBackend().revoke("1", "private-a")


async def test_revoke_reaches_the_server(server: Server) -> None:
    from tests.server.helpers import join

    client = await Client.open(server.url)
    await join(client, "private-a", "7")
    LocalBackend().revoke("7", "private-a")
    assert (await client.recv_op("revoked"))["channel"] == "private-a"
    assert server.revocations.seen("7", "private-a") is not None
    assert server.hub.subscribers("private-a") == 0
    await client.close()
