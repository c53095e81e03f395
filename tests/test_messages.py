"""The Message envelope: validation of names, JSON-ability and size."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy

from rtbridge.exceptions import InvalidEventName, InvalidMessage, PayloadTooLarge
from rtbridge.messages import Message


def test_message_is_frozen_and_normalizes_channels():
    message = Message(["a", "b", "a"], "ev", {"x": 1})
    assert message.channels == ("a", "b")
    assert message.payload == '{"x":1}'
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.event = "other"  # type: ignore[misc]


def test_django_json_types_are_encoded():
    message = Message(
        "a",
        "ev",
        {
            "when": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
            "price": Decimal("1.10"),
            "id": uuid.UUID(int=7),
            "label": gettext_lazy("hello"),
        },
    )
    received = message.as_received()
    assert received.data == {
        "when": "2026-01-02T03:04:05Z",
        "price": "1.10",
        "id": "00000000-0000-0000-0000-000000000007",
        "label": "hello",
    }
    assert received.channels == message.channels and received.payload == message.payload


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"s": {1, 2}}, "cannot be encoded as JSON"),
        ({"f": float("nan")}, "cannot be encoded as JSON"),
        (object(), "cannot be encoded as JSON"),
    ],
)
def test_non_json_data_is_refused(data, match):
    with pytest.raises(InvalidMessage, match=match):
        Message("a", "ev", data)


@pytest.mark.parametrize(
    ("event", "match"),
    [
        ("", "give 1 to 64"),
        ("x" * 65, "65 characters long"),
        ("a b", "use A-Z a-z 0-9 _ - . only"),
        ("pusher:x", "use A-Z a-z 0-9 _ - . only"),
        ("client-typing", "reserved prefix"),
        (5, "event names are strings"),
    ],
)
def test_bad_event_names(event, match):
    with pytest.raises(InvalidEventName, match=match):
        Message("a", event, None)


def test_bad_exclude_and_channels():
    with pytest.raises(InvalidMessage, match="exclude='a b' is not a socket id"):
        Message("a", "ev", exclude="a b")
    with pytest.raises(InvalidMessage, match="No channel given"):
        Message([], "ev")
    with pytest.raises(InvalidMessage, match="must be a channel name or an iterable"):
        Message(5, "ev")  # type: ignore[arg-type]
    assert Message("a", "ev", exclude="123.456").exclude == "123.456"


def test_size_limit_counts_utf8_bytes():
    Message("a", "ev", "x" * 98, max_bytes=100)  # 100 bytes with the quotes
    with pytest.raises(
        PayloadTooLarge, match="is 101 bytes as JSON; the active backend accepts at most 100"
    ) as info:
        Message("a", "ev", "x" * 99, max_bytes=100)
    assert (info.value.size, info.value.limit) == (101, 100)
    with pytest.raises(PayloadTooLarge):
        Message("a", "ev", "é" * 50, max_bytes=100)  # 102 bytes, 52 characters
    assert Message("a", "ev", "é" * 49, max_bytes=100).size == 100
