"""The server over real sockets (in-memory broker): protocol v2, fan-out, limits, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable

import pytest
from websockets.exceptions import InvalidStatus

from rtbridge.messages import Message
from rtbridge.server import Server
from tests.server.helpers import Client, eventually

MakeServer = Callable[..., Server]


async def test_welcome_carries_socket_id_protocol_and_heartbeat(make_server: MakeServer) -> None:
    server = make_server(options={"heartbeat": 7})
    first = await Client.open(server.url)
    second = await Client.open(server.url)
    assert first.welcome["protocol"] == 2
    assert first.welcome["heartbeat"] == 7
    assert first.welcome["server"].startswith("rtbridge/")
    assert first.socket_id != second.socket_id
    assert first.socket_id.startswith(server.node_id + ".")
    # The socket id is a valid Message.exclude value.
    Message("x", "e", exclude=first.socket_id)
    await first.close()
    await second.close()


async def test_subscribe_ack_message_and_unsubscribe(server: Server) -> None:
    client = await Client.open(server.url)
    ack = await client.request("subscribe", channel="todo.todoitem;todo_list_id=1")
    epoch = ack["epoch"]
    assert ack == {
        "op": "ack",
        "id": 1,
        "channel": "todo.todoitem;todo_list_id=1",
        "offset": 0,
        "epoch": epoch,
        "seq": 0,
    }
    server.publish(Message("todo.todoitem;todo_list_id=1", "created", {"id": 5, "t": "é"}))
    assert await client.messages(1) == [
        {
            "op": "message",
            "channel": "todo.todoitem;todo_list_id=1",
            "event": "created",
            "offset": 1,
            "epoch": epoch,
            "seq": 1,
            "data": {"id": 5, "t": "é"},
        }
    ]
    # Subscribing again is acknowledged with the current offset and does not double delivery.
    again = await client.request("subscribe", channel="todo.todoitem;todo_list_id=1")
    assert (again["offset"], again["epoch"]) == (1, epoch)
    assert "recovered" not in again  # only a subscribe with since asks to recover
    server.publish(Message("todo.todoitem;todo_list_id=1", "updated", 2))
    # Published before anyone listens to "other": it still takes offset 1 there.
    server.publish(Message("other", "marker", 3))
    assert (await client.subscribe("other"))["offset"] == 1
    server.publish(Message("other", "marker", 4))
    frames = [await client.recv_op("message"), await client.recv_op("message")]
    assert [(f["event"], f["offset"]) for f in frames] == [("updated", 2), ("marker", 2)]
    assert await client.request("unsubscribe", channel="todo.todoitem;todo_list_id=1") == {
        "op": "ack",
        "id": 4,
        "channel": "todo.todoitem;todo_list_id=1",
    }
    # Unsubscribing a channel the connection does not have is acknowledged too.
    assert (await client.request("unsubscribe", channel="never"))["op"] == "ack"
    server.publish(Message("todo.todoitem;todo_list_id=1", "deleted", 5))
    server.publish(Message("other", "last", 6))
    assert (await client.recv_op("message"))["event"] == "last"
    await client.close()


async def test_ping_pong_and_client_heartbeat(server: Server) -> None:
    client = await Client.open(server.url)
    await client.send({"op": "heartbeat"})
    assert await client.request("ping") == {"op": "pong", "id": 1}
    await client.close()


async def test_fan_out_to_200_clients(server: Server) -> None:
    clients = await asyncio.gather(*(Client.open(server.url) for _ in range(200)))
    await asyncio.gather(*(c.subscribe("room") for c in clients))
    for number in range(5):
        server.publish(Message("room", "said", {"n": number}))
    received = await asyncio.gather(*(c.messages(5) for c in clients))
    for frames in received:
        assert [f["data"]["n"] for f in frames] == [0, 1, 2, 3, 4]
        assert [f["seq"] for f in frames] == [1, 2, 3, 4, 5]
    assert server.hub.stats.frames >= 1000
    await asyncio.gather(*(c.close() for c in clients))


async def test_per_channel_order_and_seq(server: Server) -> None:
    client = await Client.open(server.url)
    await client.subscribe("a")
    await client.subscribe("b")
    for number in range(300):
        server.publish(Message(["a", "b"] if number % 3 == 0 else "a", "n", number))
    frames = await client.messages(400)
    by_channel: dict[str, list[dict[str, object]]] = {"a": [], "b": []}
    for frame in frames:
        by_channel[frame["channel"]].append(frame)
    assert [f["data"] for f in by_channel["a"]] == list(range(300))
    assert [f["seq"] for f in by_channel["a"]] == list(range(1, 301))
    assert [f["data"] for f in by_channel["b"]] == list(range(0, 300, 3))
    assert [f["seq"] for f in by_channel["b"]] == list(range(1, 101))
    await client.close()


async def test_exclude_skips_only_the_sender(server: Server) -> None:
    sender = await Client.open(server.url)
    other = await Client.open(server.url)
    for client in (sender, other):
        await client.subscribe("room")
    server.publish(Message("room", "mine", 1, exclude=sender.socket_id))
    server.publish(Message("room", "everyone", 2))
    assert [f["event"] for f in await other.messages(2)] == ["mine", "everyone"]
    assert [f["event"] for f in await sender.messages(1)] == ["everyone"]
    await sender.close()
    await other.close()


@pytest.mark.parametrize("channel", ["private-orders", "presence-room"])
async def test_protected_channels_need_a_valid_token(server: Server, channel: str) -> None:
    client = await Client.open(server.url)
    answer = await client.request("subscribe", channel=channel, auth="anything")
    assert (answer["code"], answer["detail"]) == (4403, "bad_signature")
    assert channel not in server.hub.channels()
    await client.close()


BAD_FRAMES = [
    ("not json", "{oops", 4400, None),
    ("array", "[1, 2]", 4400, None),
    ("string", '"subscribe"', 4400, None),
    ("binary", b'{"op": "ping", "id": 1}', 4400, None),
    ("missing op", '{"id": 3}', 4404, 3),
    ("unknown op", '{"op": "publish", "id": 4}', 4404, 4),
    ("op not a string", '{"op": 5, "id": 5}', 4404, 5),
    ("id missing", '{"op": "ping"}', 4409, None),
    ("id a string", '{"op": "subscribe", "id": "7", "channel": "a"}', 4409, None),
    ("id a bool", '{"op": "ping", "id": true}', 4409, None),
    ("channel missing", '{"op": "subscribe", "id": 8}', 4409, 8),
    ("channel a number", '{"op": "unsubscribe", "id": 9, "channel": 9}', 4409, 9),
    ("auth not a string", '{"op": "subscribe", "id": 10, "channel": "a", "auth": 1}', 4409, 10),
    ("channel with a space", '{"op": "subscribe", "id": 11, "channel": "a b"}', 4422, 11),
    ("channel empty", '{"op": "subscribe", "id": 12, "channel": ""}', 4422, 12),
    ("channel too long", json.dumps({"op": "subscribe", "id": 13, "channel": "a" * 300}), 4422, 13),
]


@pytest.mark.parametrize(
    ("frame", "code", "request_id"), [b[1:] for b in BAD_FRAMES], ids=[b[0] for b in BAD_FRAMES]
)
async def test_bad_input_gets_a_coded_error_and_the_server_keeps_serving(
    server: Server, frame: str | bytes, code: int, request_id: int | None
) -> None:
    bystander = await Client.open(server.url)
    await bystander.subscribe("room")
    client = await Client.open(server.url)
    await client.send(frame)
    error = await client.recv()
    assert error["op"] == "error"
    assert error["code"] == code
    assert error["id"] == request_id
    assert isinstance(error["reason"], str) and error["reason"]
    # The same socket still works, and so does everyone else's.
    assert await client.request("ping") == {"op": "pong", "id": 1}
    server.publish(Message("room", "still", 1))
    assert (await bystander.messages(1))[0]["event"] == "still"
    await client.close()
    await bystander.close()


async def test_error_reason_names_the_bad_channel(server: Server) -> None:
    client = await Client.open(server.url)
    error = await client.request("subscribe", channel="a b")
    assert "'a b'" in error["reason"] and "allowed" in error["reason"]
    error = await client.request("bogus")
    assert "'bogus'" in error["reason"] and "subscribe" in error["reason"]
    await client.close()


async def test_oversize_frame_gets_4413_and_far_beyond_closes_1009(make_server: MakeServer) -> None:
    server = make_server(options={"max_frame_bytes": 1024})
    client = await Client.open(server.url)
    await client.send(json.dumps({"op": "ping", "id": 1, "pad": "x" * 2000}))
    error = await client.recv()
    assert (error["code"], error["id"]) == (4413, None)
    assert "1024" in error["reason"]
    assert await client.request("ping") == {"op": "pong", "id": 1}
    await client.send("x" * 10_000)
    assert (await client.closed())[0] == 1009


async def test_too_many_subscriptions(make_server: MakeServer) -> None:
    server = make_server(options={"max_subscriptions": 3})
    client = await Client.open(server.url)
    for name in ("a", "b", "c"):
        await client.subscribe(name)
    error = await client.request("subscribe", channel="d")
    assert error["code"] == 4429
    # Re-subscribing one it has is fine; after an unsubscribe there is room again.
    assert (await client.request("subscribe", channel="a"))["op"] == "ack"
    await client.request("unsubscribe", channel="b")
    assert (await client.request("subscribe", channel="d"))["op"] == "ack"
    await client.close()


async def test_flood_of_bad_subscribes_closes_4001(make_server: MakeServer) -> None:
    server = make_server(options={"max_subscriptions": 2, "abuse_threshold": 5})
    client = await Client.open(server.url)
    for number in range(50):
        await client.send({"op": "subscribe", "id": number, "channel": f"flood.{number}"})
    code, reason = await client.closed()
    assert code == 4001
    assert "in a row" in reason
    errors = server.hub.stats.errors
    assert 5 <= errors < 50
    # The node still serves others.
    other = await Client.open(server.url)
    assert await other.request("ping") == {"op": "pong", "id": 1}
    await other.close()


async def test_good_frame_resets_the_abuse_count(make_server: MakeServer) -> None:
    server = make_server(options={"abuse_threshold": 3})
    client = await Client.open(server.url)
    for _ in range(5):
        await client.send("junk")
        await client.send("junk")
        assert (await client.recv())["code"] == 4400
        assert (await client.recv())["code"] == 4400
        assert await client.request("ping") == {"op": "pong", "id": client._next_id}
    await client.close()


async def test_max_connections_closes_4003(make_server: MakeServer) -> None:
    server = make_server(options={"max_connections": 2})
    first = await Client.open(server.url)
    second = await Client.open(server.url)
    from websockets.asyncio.client import connect

    extra = await connect(server.url)
    await extra.wait_closed()
    assert extra.close_code == 4003
    await first.close()
    await asyncio.sleep(0.1)
    third = await Client.open(server.url)
    await second.close()
    await third.close()


@pytest.mark.parametrize(
    "answer",
    ['{"op": "heartbeat"}', '{"op":"heartbeat"}'],
    ids=["parsed", "fast-path (as the JS client sends it)"],
)
async def test_heartbeats_and_idle_timeout(make_server: MakeServer, answer: str) -> None:
    server = make_server(options={"heartbeat": 0.1, "idle_timeout": 0.6})
    quiet = await Client.open(server.url)
    chatty = await Client.open(server.url)
    assert (await quiet.recv_op("heartbeat", timeout=2)) == {"op": "heartbeat"}
    started = time.monotonic()
    while time.monotonic() - started < 1.2:
        await chatty.send(answer)
        await asyncio.sleep(0.1)
    code, reason = await quiet.closed()
    assert code == 4408
    assert "idle" in reason
    # The client that answered heartbeats is still open.
    assert await chatty.request("ping") == {"op": "pong", "id": 1}
    await chatty.close()


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://127.0.0.1:5555", True),  # ALLOWED_HOSTS host, any port
        ("https://localhost", True),
        ("http://evil.example", False),
        ("null", False),
    ],
)
async def test_origin_check_from_allowed_hosts(server: Server, origin: str, allowed: bool) -> None:
    if allowed:
        client = await Client.open(server.url, origin=origin)
        await client.close()
        return
    with pytest.raises(InvalidStatus) as info:
        await Client.open(server.url, origin=origin)
    assert info.value.response.status_code == 403
    assert server.hub.stats.refused == 1


async def test_origin_list_setting(make_server: MakeServer) -> None:
    server = make_server(allowed_origins=["https://app.example.com"])
    client = await Client.open(server.url, origin="https://app.example.com")
    await client.close()
    with pytest.raises(InvalidStatus):
        await Client.open(server.url, origin="https://app.example.com:8443")
    with pytest.raises(InvalidStatus):
        await Client.open(server.url, origin="http://127.0.0.1:1")
    # Same origin as the socket itself is always fine.
    client = await Client.open(server.url, origin=server.http_url)
    await client.close()


def _stalled_socket(port: int, path: str) -> socket.socket:
    """Open a WebSocket by hand with a tiny receive buffer, and never read from it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    subscribe = json.dumps({"op": "subscribe", "id": 1, "channel": "firehose"}).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(subscribe))
    sock.sendall(bytes([0x81, 0x80 | len(subscribe)]) + mask + masked)
    return sock


@pytest.mark.parametrize("stalled_count", [1, 5])
async def test_stalled_client_is_disconnected_4002_while_others_receive(
    make_server: MakeServer, stalled_count: int
) -> None:
    server = make_server(options={"max_buffer_bytes": 256 * 1024})
    reader = await Client.open(server.url)
    await reader.subscribe("firehose")
    stalled = [_stalled_socket(server.port, server.config.path) for _ in range(stalled_count)]
    await eventually(lambda: server.hub.subscribers("firehose") == 1 + stalled_count)
    chunk = "x" * 100_000
    count = 200  # 20 MB: far more than the kernel buffers and the 256 KiB limit together
    received = 0

    async def read_all() -> None:
        nonlocal received
        while received < count:
            frame = await reader.recv_op("message", timeout=10)
            assert frame["seq"] == received + 1
            received += 1

    def caught_up(target: int) -> Callable[[], bool]:
        return lambda: received >= target

    reading = asyncio.create_task(read_all())
    for number in range(count):
        server.publish(Message("firehose", "chunk", {"n": number, "pad": chunk}))
        if number % 10 == 9:
            # A healthy reader lags by at most ~2 MB, which the kernel buffers absorb even on
            # a slow machine; the stalled sockets fall behind by everything.
            await eventually(caught_up(number - 20), timeout=20)
    await asyncio.wait_for(reading, 30)
    assert received == count
    assert server.hub.stats.slow_consumers == stalled_count
    assert server.hub.subscribers("firehose") == 1
    for sock in stalled:
        sock.close()
    await reader.close()


async def test_stop_closes_clients_with_1001(make_server: MakeServer) -> None:
    server = make_server()
    clients = [await Client.open(server.url) for _ in range(3)]
    await asyncio.get_running_loop().run_in_executor(None, server.stop)
    for client in clients:
        code, reason = await client.closed()
        assert code == 1001
        assert "shutting down" in reason


async def test_frames_after_an_abuse_close_leave_no_subscription_behind(
    make_server: MakeServer,
) -> None:
    server = make_server(options={"abuse_threshold": 2})
    client = await Client.open(server.url)
    # Two bad frames close the socket; the subscribe right behind them must not register.
    await client.send("junk")
    await client.send("junk")
    await client.send({"op": "subscribe", "id": 1, "channel": "late"})
    assert (await client.closed())[0] == 4001
    await eventually(lambda: server.hub.open_sockets == 0)
    assert server.hub.channels() == []
    assert server.hub.connections == {}


async def test_an_open_socket_keeps_nothing_of_its_handshake(server: Server) -> None:
    # An idle socket's memory bounds how many one node holds: its handshake's headers and
    # cookies go once the socket is open.
    headers = {"Cookie": "sessionid=abc; theme=dark; " + "x" * 500, "User-Agent": "y" * 300}
    client = await Client.open(server.url, additional_headers=headers)
    connection = server.hub.connections[client.socket_id]
    handler = connection.transport._handler  # type: ignore[attr-defined]
    assert connection.session_key == "abc"
    assert len(handler.request.headers) == 0
    assert "_cookies" not in vars(handler.request)
    assert list(handler._headers.get_all()) == []
    assert await client.request("ping") == {"op": "pong", "id": 1}
    await client.close()
