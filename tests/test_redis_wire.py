"""``rtbridge.redis_wire``: the bytes and keys the ``redis`` backend and the server nodes share."""

from __future__ import annotations

import json
import secrets
import time
import warnings

import pytest
import redis

from rtbridge import redis_wire
from rtbridge.exceptions import ImproperlyConfigured
from rtbridge.messages import Message
from rtbridge.redis_wire import (
    LUA_PUBLISH_PRESENCE,
    PresenceChange,
    Revocation,
    Whisper,
    decode_body,
    decode_control,
    decode_whisper,
    encode_message,
    encode_revocation,
    encode_whisper,
    is_whisper,
)
from tests.services import RedisServer


def test_keys_and_channels_are_the_documented_ones() -> None:
    # docs/server.md, "Redis message format" and "Presence in Redis".
    prefix = "rtbridge:"
    assert redis_wire.channel_key(prefix, "todo.todoitem;todo_list_id=1") == (
        b"rtbridge:{todo.todoitem;todo_list_id=1}"
    )
    assert redis_wire.control_channel(prefix) == "rtbridge:!node"
    # Every key of a channel carries the channel as its Redis Cluster hash tag.
    assert redis_wire.revocation_key(prefix, "7", "private-a") == "rtbridge:revoked:{private-a}|7"
    assert redis_wire.presence_key(prefix, "presence-x.1") == "rtbridge:presence:{presence-x.1}"
    assert redis_wire.presence_nodes_key(prefix, "presence-x.1") == (
        "rtbridge:presence-nodes:{presence-x.1}"
    )
    assert redis_wire.entry_field("ab12.3", "7") == "ab12.3|7"


def test_a_message_body_round_trips_one_pair_per_channel() -> None:
    message = Message(["a", "b.1"], "created", {"text": "é\nline"}, exclude="f3.17")
    pairs = encode_message(message, "p:")
    assert [channel for channel, _ in pairs] == [b"p:{a}", b"p:{b.1}"]
    assert [redis_wire.channel_from_key("p:", channel) for channel, _ in pairs] == ["a", "b.1"]
    for foreign in (b"q:{a}", b"p:a", b"p:{a"):
        with pytest.raises(ValueError):
            redis_wire.channel_from_key("p:", foreign)
    body = pairs[0][1]
    assert body.startswith(b"rtb1\ncreated\nf3.17\n")
    assert decode_body(body) == ("created", "f3.17", message.payload.encode())
    assert not is_whisper(body)
    with pytest.raises(ValueError, match="not an rtbridge message body"):
        decode_body(b"rtb2\ncreated\n\n{}")


def test_a_whisper_body_round_trips() -> None:
    body = encode_whisper("typing", b'{"\xc3\xa9":1}', "user\n7", "ab12.3")
    assert body == b'rtw1\ntyping\nab12.3\nuser 7\n{"\xc3\xa9":1}'  # the newline would split
    assert is_whisper(body)
    assert decode_whisper(body) == Whisper("typing", "ab12.3", "user 7", b'{"\xc3\xa9":1}')
    assert decode_whisper(encode_whisper("e", b"null", None, "s.1")).user_id is None


@pytest.mark.parametrize(
    "body", [b"rtw1\ntoo few", b"rtw2\ne\ns\n\n{}", b"rtw1\ne\n\xff\n\n{}", b"rtw1\ne\ns\n\xff\n{}"]
)
def test_a_malformed_whisper_body_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError, match="not an rtbridge whisper body"):
        decode_whisper(body)


def test_control_bodies_decode_to_events() -> None:
    assert decode_control(encode_revocation("7", "private-a", 12.5)) == Revocation(
        "7", "private-a", 12.5
    )
    body = b'rtc1\n{"t":"presence","c":"presence-a","a":"join","v":"3","m":{"id":"1"}}'
    assert decode_control(body) == PresenceChange("presence-a", "join", {"id": "1"}, 3)
    # Another format, or a kind a newer node may send, is not this node's business.
    assert decode_control(b"rtb1\ne\n\n{}") is None
    assert decode_control(b'rtc1\n{"t":"rebalance"}') is None


@pytest.mark.parametrize(
    "body", [b"rtc1\nnot json", b'rtc1\n{"t":"revoke","c":"x"}', b"rtc1\n[1]", b'rtc1\n"t"']
)
def test_a_malformed_control_body_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        decode_control(body)


def test_the_lua_presence_publisher_writes_what_decode_control_reads(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    control = f"t{secrets.token_hex(4)}:presence-todo.1"
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(control)
    pubsub.get_message(timeout=1)
    member = {"id": "7", "info": {"name": 'Zoë "z" /\\'}}
    script = (
        LUA_PUBLISH_PRESENCE + "publish_presence('PUBLISH', ARGV[1], ARGV[2], 'join', 41, ARGV[3])"
    )
    client.eval(script, 0, control, "presence-todo.1", json.dumps(member, ensure_ascii=False))
    deadline = time.monotonic() + 5
    item = None
    while item is None and time.monotonic() < deadline:
        item = pubsub.get_message(timeout=0.1)
    pubsub.close()
    client.close()
    assert item is not None
    assert decode_control(item["data"]) == PresenceChange("presence-todo.1", "join", member, 41)


def test_options_are_checked_naming_their_source() -> None:
    assert redis_wire.check_url("rediss://h:6380/1", "x") == "rediss://h:6380/1"
    with pytest.raises(ImproperlyConfigured, match=r"--redis-url='http://h' is not a Redis URL"):
        redis_wire.check_url("http://h", "--redis-url")
    with pytest.raises(ImproperlyConfigured, match=r"RTBRIDGE_OPTIONS\['prefix'\]=3 is not a str"):
        redis_wire.check_prefix(3, "RTBRIDGE_OPTIONS['prefix']")
    assert redis_wire.safe_url("redis://u:secret@h:1/0") == "redis://u:***@h:1/0"


def test_the_old_import_path_still_works_with_a_deprecation_warning() -> None:
    import rtbridge.backends.redis as backend_module

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert backend_module.safe_url is redis_wire.safe_url
        assert backend_module.DEFAULT_PREFIX == "rtbridge:"
    assert [w.category for w in caught] == [DeprecationWarning, DeprecationWarning]
    assert "rtbridge.redis_wire.safe_url" in str(caught[0].message)
    with pytest.raises(AttributeError):
        backend_module.no_such_name  # noqa: B018
