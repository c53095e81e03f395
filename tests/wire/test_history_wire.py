"""Positions on the wire: what soketi (Pusher), the PubNub fake and the Firebase fake receive,
what the vendors' own JS SDKs hand a page, and that the history endpoint replays the same."""

from __future__ import annotations

import json
import queue
import time
from typing import Any

import pytest
from django.test import Client

import rtbridge
from rtbridge.channel_names import encode_for_firebase, encode_for_pubnub, encode_for_pusher
from rtbridge.exceptions import PayloadTooLarge, PublishError
from rtbridge.history import EPOCH_LENGTH, MAX_OFFSET, Position
from rtbridge.messages import Message
from rtbridge.publishers import get_backend, load_backend
from tests.wire.fakes.firebase import FakeFirebase
from tests.wire.fakes.pubnub import FakePubNub
from tests.wire.fixtures import fake_firebase, fake_pubnub, soketi
from tests.wire.servers import PUSHER_APP, NodeListener, Soketi

__all__ = ["fake_firebase", "fake_pubnub", "soketi"]

pytestmark = pytest.mark.django_db(transaction=True)

ROOM, OTHER = "chat.room;id=1", "chat.other"


@pytest.fixture(autouse=True)
def history(settings: Any) -> None:
    settings.RTBRIDGE_HISTORY = {"store": "database", "size": 100, "ttl": 600}


def lines(listener: NodeListener, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Return the next ``count`` message lines a listener printed, as printed."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        try:
            line = listener.lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(
                f"{len(got)} of {count} lines: {got}; {listener.errors[-5:]}"
            ) from None
        if "error" in line:
            raise AssertionError(line)
        got.append(line)
    return got


def epochs() -> tuple[str, str]:
    backend = get_backend()
    return backend.read_history(ROOM, None).epoch, backend.read_history(OTHER, None).epoch


def replayed(channel: str, since: int, epoch: str) -> list[Any]:
    answer = (
        Client()
        .post(
            "/rtbridge/history",
            {"channel": channel, "since": {"offset": since, "epoch": epoch}},
            content_type="application/json",
        )
        .json()
    )
    assert answer["recovered"] is True, answer
    return [(m["offset"], m["event"], m["data"]) for m in answer["messages"]]


def publish_three() -> None:
    rtbridge.publish(ROOM, "said", {"text": "héllo ☕"})
    rtbridge.publish([ROOM, OTHER], "said", {"text": "both"})
    rtbridge.publish(ROOM, "said", [1, 2, 3])
    rtbridge.flush(10)


def heard_of_three(script: str, config: dict[str, Any]) -> list[dict[str, Any]]:
    """Start the vendor SDK listener ``script``, publish the three messages, return its 4 lines."""
    listener = NodeListener(script, config)
    try:
        publish_three()
        return lines(listener, 4)
    finally:
        listener.close()


def test_pusher_events_carry_the_position_in_data(settings: Any, soketi: Soketi) -> None:
    settings.RTBRIDGE_BACKEND = "pusher"
    settings.RTBRIDGE_OPTIONS = soketi.options
    config = {
        "key": PUSHER_APP["key"],
        "wsHost": "127.0.0.1",
        "wsPort": soketi.port,
        "channels": [[name, encode_for_pusher(name)] for name in (ROOM, OTHER)],
    }
    got = heard_of_three("listen_pusher.mjs", config)
    room, other = epochs()
    assert sorted(got, key=lambda line: (line["channel"], line["data"]["offset"])) == [
        {
            "channel": OTHER,
            "event": "said",
            "data": {"data": {"text": "both"}, "offset": 1, "epoch": other},
        },
        {
            "channel": ROOM,
            "event": "said",
            "data": {"data": {"text": "héllo ☕"}, "offset": 1, "epoch": room},
        },
        {
            "channel": ROOM,
            "event": "said",
            "data": {"data": {"text": "both"}, "offset": 2, "epoch": room},
        },
        {"channel": ROOM, "event": "said", "data": {"data": [1, 2, 3], "offset": 3, "epoch": room}},
    ]
    assert replayed(ROOM, 1, room) == [(2, "said", {"text": "both"}), (3, "said", [1, 2, 3])]


def text_of_bytes(size: int) -> str:
    """Return a JSON string payload of exactly ``size`` UTF-8 bytes: CJK, accents, emoji."""
    text = ""
    for piece in "漢字かなé☕":
        text += piece
    base = len(json.dumps(text, ensure_ascii=False).encode())
    filler = size - base
    return json.dumps(text + "x" * filler, ensure_ascii=False)[1:-1]


def test_pusher_limit_counts_the_position_and_soketi_agrees(settings: Any, soketi: Soketi) -> None:
    backend = load_backend("pusher", **soketi.options, mode="sync")
    try:
        limit = backend.max_payload_bytes
        assert limit is not None and limit < 10240
        data = text_of_bytes(limit)
        message = Message(ROOM, "big", data, max_bytes=limit)
        assert message.size == limit
        widest = [{ROOM: Position(MAX_OFFSET, "E" * EPOCH_LENGTH)}]
        for call in backend.build_calls([message], widest):
            call.send()  # exactly 10240 bytes of event data: soketi (Pusher's 10 KB) accepts
        with pytest.raises(PayloadTooLarge):
            Message(ROOM, "big", text_of_bytes(limit + 1), max_bytes=limit)
        over = Message(ROOM, "big", text_of_bytes(limit + 1))
        with pytest.raises(PublishError, match="413"):
            for call in backend.build_calls([over], widest):
                call.send()
    finally:
        backend.close()


def test_pubnub_messages_carry_offset_and_epoch(settings: Any, fake_pubnub: FakePubNub) -> None:
    settings.RTBRIDGE_BACKEND = "pubnub"
    settings.RTBRIDGE_OPTIONS = {
        "publish_key": fake_pubnub.publish_key,
        "subscribe_key": fake_pubnub.subscribe_key,
        "origin": fake_pubnub.host,
        "ssl": False,
    }
    config = {
        "subscribeKey": fake_pubnub.subscribe_key,
        "origin": fake_pubnub.host,
        "channels": [[name, encode_for_pubnub(name)] for name in (ROOM, OTHER)],
    }
    got = heard_of_three("listen_pubnub.mjs", config)
    room, other = epochs()
    stored = fake_pubnub.received(encode_for_pubnub(ROOM))[-3:]
    assert stored == [
        {
            "event": "said",
            "data": {"text": "héllo ☕"},
            "exclude": None,
            "offset": 1,
            "epoch": room,
        },
        {"event": "said", "data": {"text": "both"}, "exclude": None, "offset": 2, "epoch": room},
        {"event": "said", "data": [1, 2, 3], "exclude": None, "offset": 3, "epoch": room},
    ]
    assert sorted((line["channel"], line["offset"], line["epoch"]) for line in got) == [
        (OTHER, 1, other),
        (ROOM, 1, room),
        (ROOM, 2, room),
        (ROOM, 3, room),
    ]
    assert replayed(OTHER, 0, other) == [(1, "said", {"text": "both"})]


def test_firebase_values_carry_offset_and_epoch(settings: Any, fake_firebase: FakeFirebase) -> None:
    settings.RTBRIDGE_BACKEND = "firebase"
    settings.RTBRIDGE_OPTIONS = {
        "database_url": fake_firebase.database_url,
        "emulator_host": fake_firebase.host,
    }
    config = {
        "databaseURL": fake_firebase.database_url,
        "host": "127.0.0.1",
        "port": fake_firebase.port,
        "root": "rtbridge",
        "channels": [[name, encode_for_firebase(name)] for name in (ROOM, OTHER)],
    }
    got = heard_of_three("listen_firebase.mjs", config)
    room, other = epochs()
    stored = fake_firebase.get(f"rtbridge/{encode_for_firebase(ROOM)}", fake_firebase.namespace)
    ordered = [stored[key] for key in sorted(stored)][-3:]
    assert [(v["offset"], v["epoch"], v["data"]) for v in ordered] == [
        (1, room, {"text": "héllo ☕"}),
        (2, room, {"text": "both"}),
        (3, room, {"0": 1, "1": 2, "2": 3}),  # the database keeps arrays as objects
    ]
    assert [line["data"] for line in got if line["channel"] == ROOM][-1] == [1, 2, 3]
    assert sorted((line["channel"], line["offset"], line["epoch"]) for line in got) == [
        (OTHER, 1, other),
        (ROOM, 1, room),
        (ROOM, 2, room),
        (ROOM, 3, room),
    ]
    assert replayed(ROOM, 2, room) == [(3, "said", [1, 2, 3])]
