"""The PubNub fake's subscribe cap: at most 100 messages per response, the newest, and the JS
SDK's "message count exceeded" status for such a response (without its event engine)."""

from __future__ import annotations

import queue
import time
from typing import Any

import pytest

from rtbridge.channel_names import encode_for_pubnub
from tests.wire.fakes.pubnub import FakePubNub
from tests.wire.fixtures import fake_pubnub
from tests.wire.servers import NodeListener

__all__ = ["fake_pubnub"]

CHANNEL = "burst.room"


def listen(server: FakePubNub, **options: Any) -> NodeListener:
    config = {
        "subscribeKey": server.subscribe_key,
        "origin": server.host,
        "channels": [[CHANNEL, encode_for_pubnub(CHANNEL)]],
        **options,
    }
    return NodeListener("listen_pubnub.mjs", config)


def burst(server: FakePubNub, count: int) -> None:
    """Publish ``count`` messages on the fake's own loop (its futures are not thread-safe)."""

    async def publish() -> None:
        for n in range(count):
            server.deliver(encode_for_pubnub(CHANNEL), {"event": "n", "data": n}, "server")

    server.call(publish)


def drain(listener: NodeListener, quiet: float = 1.5) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    while True:
        try:
            got.append(listener.lines.get(timeout=quiet))
        except queue.Empty:
            return got


@pytest.mark.parametrize("legacy", [True, False], ids=["subscription-manager", "event-engine"])
def test_a_burst_of_150_reaches_the_sdk_as_the_newest_100(
    fake_pubnub: FakePubNub, legacy: bool
) -> None:
    fake_pubnub.coalesce = 1.0  # the whole burst lands while the long-poll is answering
    listener = listen(fake_pubnub, legacy=legacy, statuses=True)
    try:
        time.sleep(0.3)  # the long-poll is open
        burst(fake_pubnub, 150)
        lines = drain(listener)
    finally:
        listener.close()
    messages = [line["data"] for line in lines if "channel" in line]
    statuses = [line["status"] for line in lines if "status" in line]
    assert messages == list(range(50, 150)), "the newest 100, in order; the oldest 50 are lost"
    assert sum(fake_pubnub.overflowed.values()) == 50
    if legacy:
        assert "PNRequestMessageCountExceededCategory" in statuses
    else:
        # pubnub 12's event engine never reports it: a page must count offsets itself.
        assert "PNRequestMessageCountExceededCategory" not in statuses


def test_at_most_the_limit_passes_whole(fake_pubnub: FakePubNub) -> None:
    fake_pubnub.coalesce = 1.0
    listener = listen(fake_pubnub, legacy=True, statuses=True)
    try:
        time.sleep(0.3)
        burst(fake_pubnub, 99)
        lines = drain(listener)
    finally:
        listener.close()
    assert [line["data"] for line in lines if "channel" in line] == list(range(99))
    assert "PNRequestMessageCountExceededCategory" not in [line.get("status") for line in lines]
