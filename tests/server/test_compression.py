"""permessage-deflate: off by default, negotiated when on, and the direct writer steps aside."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rtbridge.messages import Message
from rtbridge.server import Server
from rtbridge.server.transport import DirectTransport, MessageTransport
from tests.server.helpers import Client, eventually

MakeServer = Callable[..., Server]


def transports(server: Server) -> list[type]:
    return [type(c.transport) for c in server.hub.connections.values()]  # type: ignore[attr-defined]


async def test_compression_is_off_by_default(server: Server) -> None:
    client = await Client.open(server.url, compression="deflate")  # the client offers it
    assert "Sec-WebSocket-Extensions" not in client.socket.response.headers
    assert transports(server) == [DirectTransport]
    await client.close()


@pytest.mark.parametrize("offered", ["deflate", None])
async def test_compression_on_is_negotiated_and_the_direct_path_steps_aside(
    make_server: MakeServer, offered: str | None
) -> None:
    server = make_server(options={"compression": True})
    client = await Client.open(server.url, compression=offered)
    plain = await Client.open(server.url, compression=None)
    extensions = client.socket.response.headers.get("Sec-WebSocket-Extensions", "")
    assert ("permessage-deflate" in extensions) is (offered is not None)
    assert transports(server) == [MessageTransport, MessageTransport]
    for each in (client, plain):
        await each.subscribe("room")
    text = "Grüße " * 2000  # compresses well; 12 KB uncompressed
    for number in range(20):
        server.publish(Message("room", "said", {"n": number, "text": text}))
    for each in (client, plain):
        frames = await each.messages(20)
        assert [f["data"]["n"] for f in frames] == list(range(20))
        assert frames[-1]["data"]["text"] == text
    if offered:
        # Tornado's counters: what went on the wire is far less than the messages.
        (connection, _) = server.hub.connections.values()
        protocol = connection.transport._handler.ws_connection  # type: ignore[attr-defined]
        await eventually(lambda: protocol._wire_bytes_out < protocol._message_bytes_out / 5)
    await client.close()
    await plain.close()
