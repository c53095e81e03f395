"""Channel names: the logical rules, model channel builders, per-transport encodings, vectors."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from rtbridge import channel_names as cn
from rtbridge.exceptions import InvalidChannelName
from tests.vectors import generate

VECTORS = json.loads((Path(generate.__file__).parent / "channel_names.json").read_text("utf-8"))


def test_vectors_file_is_up_to_date():
    assert generate.build() == VECTORS, "run: python -m tests.vectors.generate"


@pytest.mark.parametrize("case", VECTORS["filter_channels"], ids=lambda c: c["channel"])
def test_filter_channel_vectors(case):
    assert cn.filter_channel(case["base"], case["filters"]) == case["channel"]


@pytest.mark.parametrize("case", VECTORS["object_channels"], ids=lambda c: c["channel"])
def test_object_channel_vectors(case):
    assert cn.object_channel(case["base"], case["pk"]) == case["channel"]


@pytest.mark.parametrize("case", VECTORS["encodings"], ids=lambda c: c["channel"][:30])
def test_encoding_vectors_and_transport_rules(case):
    pusher, pubnub, firebase = case["pusher"], case["pubnub"], case["firebase"]
    assert cn.encode_for_pusher(case["channel"]) == pusher
    assert cn.encode_for_pubnub(case["channel"]) == pubnub
    assert cn.encode_for_firebase(case["channel"]) == firebase
    assert len(pusher) <= 164 and set(pusher) <= set(
        "-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_=@,.;"
    )
    assert len(pubnub) <= 92 and not set(pubnub) & set(".,:*/\\ ")
    assert not set(firebase) & set(".$#[]/")


@pytest.mark.parametrize("name", VECTORS["invalid_channels"])
def test_invalid_channel_vectors(name):
    with pytest.raises(InvalidChannelName):
        cn.validate_channel(name)


def test_errors_name_the_value_and_the_rule():
    with pytest.raises(InvalidChannelName, match=r"'a b' contains ' '; allowed characters"):
        cn.validate_channel("a b")
    with pytest.raises(InvalidChannelName, match="201 characters long; the limit is 200"):
        cn.validate_channel("a" * 201)
    with pytest.raises(InvalidChannelName, match="is a int; channel names are strings"):
        cn.validate_channel(5)
    with pytest.raises(InvalidChannelName, match="'todo_list__name' is not allowed"):
        cn.normalize_filter_key("todo_list__name")
    with pytest.raises(InvalidChannelName, match="has type float"):
        cn.filter_channel("todo.todoitem", {"x": 1.5})
    with pytest.raises(InvalidChannelName, match="repeats 'todo_list_id'"):
        cn.filter_channel("todo.todoitem", {"todo_list_id": 1, "todo_list__id": 1})
    with pytest.raises(InvalidChannelName, match="Channel base 'todo item' is not allowed"):
        cn.collection_channel("Todo Item")


def test_filter_value_encodings_round_trip():
    for value in ["plain", "with space", "Zürich", "@home", "a.b", "", "="]:
        encoded = cn.encode_filter_value(value)
        assert cn.decode_filter_value(encoded) == value
        cn.validate_channel("x;k=" + encoded if encoded else "x")
    assert cn.encode_filter_value(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert cn.encode_filter_value(Decimal("1.50")) == "1.5"
    with pytest.raises(InvalidChannelName, match="finite"):
        cn.encode_filter_value(Decimal("NaN"))


def test_encodings_are_collision_safe_for_long_names():
    long_a = "a" * 100 + ".x"
    long_b = "a" * 100 + ".y"
    assert cn.encode_for_pubnub(long_a) != cn.encode_for_pubnub(long_b)
    assert cn.encode_for_pusher("p" * 170) != cn.encode_for_pusher("p" * 169 + "q")
    # A hashed name contains a mark no logical name has, so it equals no unhashed name.
    assert "!" in cn.encode_for_pubnub(long_a)
    assert "," in cn.encode_for_pusher("p" * 170)
    assert cn.encode_for_pusher("private-" + "p" * 170).startswith("private-")


def test_parse_filter_channel():
    assert cn.parse_filter_channel("todo.todoitem;done=true;todo_list_id=1") == (
        "todo.todoitem",
        {"done": "true", "todo_list_id": "1"},
    )
    with pytest.raises(InvalidChannelName, match="malformed filter part 'done'"):
        cn.parse_filter_channel("todo.todoitem;done")


def test_model_channels_from_model_class():
    from tests.testapp.models import TodoItem

    assert cn.collection_channel(TodoItem) == "testapp.todoitem"
    assert cn.object_channel(TodoItem, 3) == "testapp.todoitem.3"
    assert cn.is_protected("private-x") and cn.is_protected("presence-x")
    assert not cn.is_protected("privatex")
