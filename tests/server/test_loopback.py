"""The ``local`` backend's loopback channel: signed requests on 127.0.0.1, and what it refuses."""

from __future__ import annotations

import asyncio
import functools
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from django.core import signing
from django.test import override_settings

from rtbridge import loopback_wire
from rtbridge.backends.loopback import send_to_servers
from rtbridge.exceptions import PublishError
from rtbridge.loopback_wire import (
    PATH,
    Revocation,
    announce,
    encode_request,
    find_servers,
    rendezvous_dir,
)
from rtbridge.messages import Message
from rtbridge.server import Server
from rtbridge.server.loopback import LoopbackReceiver
from tests.server.helpers import Client, join


@pytest.fixture(autouse=True)
def own_rendezvous(settings: Any, tmp_path: Path) -> None:
    # A project of this test's own: no other test (or test run) meets its servers.
    settings.BASE_DIR = tmp_path


@pytest.fixture
async def receiver() -> AsyncIterator[LoopbackReceiver]:
    """A server with its loopback receiver, on this test's event loop."""
    server = Server()
    await server.astart()
    receiver = LoopbackReceiver(server)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()
        await server.astop()


def post(receiver: LoopbackReceiver, body: bytes, headers: dict[str, str] | None = None) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
    try:
        connection.request("POST", PATH, body, headers or {})
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    return response.status, json.loads(answer) if answer else None


async def subscriber(receiver: LoopbackReceiver, channel: str = "notes.note") -> Client:
    server = receiver.target
    assert isinstance(server, Server)
    client = await Client.open(server.url)
    await client.subscribe(channel)
    return client


async def nothing_arrives(client: Client) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await client.recv_op("message", timeout=0.3)


async def test_a_signed_request_reaches_the_subscribers(receiver: LoopbackReceiver) -> None:
    client = await subscriber(receiver)
    messages = [Message("notes.note", "created", {"n": n, "text": "é ✓"}) for n in range(3)]
    assert await asyncio.to_thread(send_to_servers, messages) == 1
    frames = await client.messages(3)
    assert [f["data"] for f in frames] == [{"n": n, "text": "é ✓"} for n in range(3)]
    assert receiver.delivered == 3
    await client.close()


async def test_large_batches_are_split_and_keep_their_order(receiver: LoopbackReceiver) -> None:
    client = await subscriber(receiver)
    blob = "x" * (400 * 1024)
    messages = [Message("notes.note", "big", {"n": n, "blob": blob}) for n in range(12)]
    assert len(loopback_wire.batches(messages)) > 1
    await asyncio.to_thread(send_to_servers, messages)
    frames = await client.messages(12, timeout=15)
    assert [f["data"]["n"] for f in frames] == list(range(12))
    await client.close()


async def test_a_revocation_reaches_the_server(receiver: LoopbackReceiver) -> None:
    server = receiver.target
    assert isinstance(server, Server)
    client = await Client.open(server.url)
    await join(client, "private-notes.1", user_id="7")
    revocation = Revocation("7", "private-notes.1", time.time())
    await asyncio.to_thread(send_to_servers, (), [revocation])
    assert (await client.recv_op("revoked"))["channel"] == "private-notes.1"
    assert server.revocations.seen("7", "private-notes.1") is not None
    await client.close()


@pytest.mark.parametrize(
    "body",
    [b"", b"not signed at all", b"\xff\xfe", signing.dumps({"v": 1}, salt="other.salt").encode()],
)
async def test_unsigned_and_forged_requests_are_refused(
    receiver: LoopbackReceiver, body: bytes
) -> None:
    client = await subscriber(receiver)
    status, answer = await asyncio.to_thread(post, receiver, body)
    assert status == 403
    assert answer["error"]["code"] == "bad_signature"
    assert "SECRET_KEY" in answer["error"]["message"]
    await nothing_arrives(client)
    assert receiver.refused == 1
    await client.close()


async def test_a_request_signed_with_another_secret_key_is_refused(
    receiver: LoopbackReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await subscriber(receiver)
    with override_settings(SECRET_KEY="another project's key"):
        body = encode_request(receiver.server_id, [Message("notes.note", "forged", {})])
    status, answer = await asyncio.to_thread(post, receiver, body)
    assert (status, answer["error"]["code"]) == (403, "bad_signature")
    # A sender with another key gets an error that names the refusal.
    monkeypatch.setattr(
        loopback_wire.signing, "dumps", functools.partial(signing.dumps, key="another key")
    )
    with pytest.raises(PublishError, match="refused the message: the request is not signed"):
        await asyncio.to_thread(send_to_servers, [Message("notes.note", "forged", {})])
    await nothing_arrives(client)
    await client.close()


async def test_a_replayed_request_is_delivered_once(receiver: LoopbackReceiver) -> None:
    client = await subscriber(receiver)
    body = encode_request(receiver.server_id, [Message("notes.note", "created", {"n": 1})])
    assert (await asyncio.to_thread(post, receiver, body))[0] == 204
    status, answer = await asyncio.to_thread(post, receiver, body)
    assert (status, answer["error"]["code"]) == (403, "replayed")
    assert [f["data"] for f in await client.messages(1)] == [{"n": 1}]
    await nothing_arrives(client)
    await client.close()


async def test_old_requests_and_requests_for_another_server_are_refused(
    receiver: LoopbackReceiver,
) -> None:
    message = [Message("notes.note", "created", {})]
    body = encode_request(receiver.server_id, message)
    later = time.time() + loopback_wire.MAX_AGE + 1
    assert receiver.receive(body, "127.0.0.1", None, now=later)[1]["error"]["code"] == "expired"
    earlier = time.time() - loopback_wire.MAX_AGE - 1  # signed "in the future"
    assert receiver.receive(body, "127.0.0.1", None, now=earlier)[1]["error"]["code"] == "expired"
    other = encode_request("a-server-that-ran-before", message)
    assert receiver.receive(other, "127.0.0.1", None)[1]["error"]["code"] == "wrong_server"
    assert receiver.delivered == 0


async def test_peers_off_loopback_and_web_pages_are_refused(receiver: LoopbackReceiver) -> None:
    def body() -> bytes:
        return encode_request(receiver.server_id, [Message("notes.note", "created", {})])

    for peer in ("192.168.1.20", "10.0.0.1", "::ffff:10.0.0.1", None, "not an address"):
        status, error = receiver.receive(body(), peer, None)
        assert (status, error and error["error"]["code"]) == (403, "not_loopback"), peer
    assert receiver.receive(body(), "::1", None)[0] == 204
    # A browser always sends Origin on a cross-origin POST (a page trying to reach the port).
    status, answer = await asyncio.to_thread(
        post, receiver, body(), {"Origin": "http://evil.example"}
    )
    assert (status, answer["error"]["code"]) == (403, "browser")
    assert receiver.delivered == 1


async def test_the_receiver_listens_on_loopback_only(receiver: LoopbackReceiver) -> None:
    assert receiver.address == f"127.0.0.1:{receiver.port}"
    [entry] = find_servers()
    assert (entry.pid, entry.port, entry.server_id) == (
        os.getpid(),
        receiver.port,
        receiver.server_id,
    )
    assert entry.file.stat().st_mode & 0o777 == 0o600
    assert rendezvous_dir().stat().st_mode & 0o777 == 0o700
    await receiver.stop()
    assert find_servers() == []  # stopping withdraws the rendezvous


def test_no_server_reaches_nobody() -> None:
    assert send_to_servers([Message("notes.note", "created", {})]) == 0


def test_rendezvous_of_a_dead_process_is_removed() -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(finished.stdout)
    file = announce(1, "gone")
    stale = file.with_name(f"{dead_pid}-gone.json")
    stale.write_text(json.dumps({"pid": dead_pid, "port": 1, "server_id": "gone", "started": 0}))
    file.unlink()
    assert find_servers() == []
    assert not stale.exists()


def test_rendezvous_whose_port_refuses_is_removed() -> None:
    file = announce(1, "refusing")  # this process is alive, but nothing listens on port 1
    assert send_to_servers([Message("notes.note", "created", {})]) == 0
    assert not file.exists()


def test_a_rendezvous_directory_that_is_not_private_is_refused(tmp_path: Path) -> None:
    directory = rendezvous_dir(create=True)
    directory.chmod(0o755)
    try:
        with pytest.raises(PublishError, match="is not a private directory of this user"):
            send_to_servers([Message("notes.note", "created", {})])
        with pytest.raises(PermissionError, match=r"rm -r"):
            announce(1, "x")
    finally:
        directory.chmod(0o700)
