"""``RedisBackend`` against a real redis-server: positions, history bounds, errors, options."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from rtbridge import conf
from rtbridge.backends.redis import RedisBackend
from rtbridge.exceptions import ImproperlyConfigured, PublishError
from rtbridge.history import Position
from rtbridge.messages import Message
from rtbridge.publishers import load_backend
from rtbridge.redis_wire import (
    LUA_READ,
    channel_key,
    decode_body,
    decode_message,
    encode_message,
    history_key,
    position_key,
    read_arguments,
    read_result,
    revocation_key,
    safe_url,
)
from tests.services import RedisServer, free_port


@pytest.fixture
def prefix() -> str:
    return f"t{secrets.token_hex(4)}:"


@pytest.fixture
def subscriber(redis_server: RedisServer, prefix: str) -> Iterator[Any]:
    client = redis.Redis.from_url(redis_server.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(f"{prefix}*")
    pubsub.get_message(timeout=1)  # the psubscribe confirmation
    yield pubsub
    pubsub.close()
    client.close()


def read(pubsub: Any, count: int) -> list[tuple[str, bytes]]:
    got: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + 5
    while len(got) < count and time.monotonic() < deadline:
        item = pubsub.get_message(timeout=0.1)
        if item and item["type"] == "pmessage":
            got.append((item["channel"].decode(), item["data"]))
    return got


def test_publish_puts_one_body_per_channel_with_its_position_and_the_payload_untouched(
    redis_server: RedisServer, prefix: str, subscriber: Any
) -> None:
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    message = Message(["a", "b.1"], "created", {"text": "é\nnew line", "n": 1.5}, exclude="x.1")
    backend.publish(message)
    backend.publish(Message("a", "again", 2))
    got = read(subscriber, 3)
    assert [channel for channel, _ in got] == [
        f"{prefix}{{a}}",
        f"{prefix}{{b.1}}",
        f"{prefix}{{a}}",
    ]
    deliveries = [decode_message(body) for _, body in got]
    for delivery in deliveries[:2]:
        assert (delivery.event, delivery.exclude, delivery.offset) == ("created", "x.1", 1)
        assert delivery.payload == message.payload.encode()
        assert json.loads(delivery.payload) == {"text": "é\nnew line", "n": 1.5}
    assert (deliveries[2].offset, deliveries[2].epoch) == (2, deliveries[0].epoch)
    # Each channel has its own numbering (and an epoch made when its position was created).
    epoch = deliveries[0].epoch
    assert got[0][1].startswith(b"rtb2\n1\n" + epoch.encode() + b"\ncreated\nx.1\n")  # type: ignore[union-attr]


def test_multi_channel_publish_and_publish_many_are_one_round_trip(
    redis_server: RedisServer, prefix: str, subscriber: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    backend.open()
    connection_class = backend.client.connection_pool.connection_class
    sends: list[int] = []
    original = connection_class.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sends.append(len(command) if isinstance(command, list) else 1)
        original(self, command, check_health)

    backend.publish(Message("warm", "e", 1))  # loads the script (once per Redis)
    assert len(read(subscriber, 1)) == 1
    monkeypatch.setattr(connection_class, "send_packed_command", counting)
    backend.publish(Message([f"c{i}" for i in range(10)], "e", 1))
    assert len(sends) == 1
    backend.publish_many([Message("d", "e", i) for i in range(20)])
    assert len(sends) == 2
    got = read(subscriber, 30)
    assert [decode_message(body).offset for channel, body in got if channel.endswith(":{d}")] == (
        list(range(1, 21))
    )


def test_redis_down_raises_a_retryable_publish_error_naming_the_url() -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    backend = RedisBackend(url=url, socket_connect_timeout=0.5)
    with pytest.raises(PublishError) as info:
        backend.publish(Message("a", "e", 1))
    assert info.value.retryable
    assert "hunter2" not in str(info.value)
    assert f"redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in str(info.value)
    with pytest.raises(PublishError):
        backend.open()


async def test_async_publish_error_when_redis_is_down() -> None:
    backend = RedisBackend(url=f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    with pytest.raises(PublishError) as info:
        await backend.apublish(Message("a", "e", 1))
    assert info.value.retryable


def test_fail_silently_counts_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    backend = RedisBackend(
        url=f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5, fail_silently=True
    )
    backend.send([Message("a", "e", 1), Message("b", "e", 2)])
    assert backend.failed_count == 2
    assert "RedisBackend dropped 2 message(s)" in caplog.text


def test_every_failed_publish_is_counted_and_logged_even_when_it_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = RedisBackend(url=f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    for _ in range(2):
        with pytest.raises(PublishError):
            backend.publish_many([Message("a", "e", 1), Message("b", "e", 2)])
    assert backend.unpublished == 4
    assert "2 message(s) not published (4 so far)" in caplog.text


def _read(client: Any, prefix: str, channel: str, since: Position) -> list[int]:
    """Return the offsets LUA_READ answers after ``since`` (with the settings' bounds)."""
    history = conf.history()
    keys, args = read_arguments(
        prefix, channel, epoch="new", ttl=history.ttl, since=since, limit=history.size
    )
    _top, entries = read_result(client.eval(LUA_READ, len(keys), *keys, *args))
    return [entry.offset for entry in entries]


def _keys(redis_server: RedisServer, prefix: str, channel: str) -> tuple[Any, str, str]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    return client, position_key(prefix, channel), history_key(prefix, channel)


def test_positions_and_history_are_bounded_by_size(
    settings: Any, redis_server: RedisServer, prefix: str
) -> None:
    settings.RTBRIDGE_HISTORY = {"size": 3, "ttl": 60}
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    positions = backend.append([Message(["a", "b"], "e", n) for n in range(5)])
    epoch_a, epoch_b = positions[0]["a"].epoch, positions[0]["b"].epoch
    assert [p["a"] for p in positions] == [Position(n, epoch_a) for n in range(1, 6)]
    assert [p["b"].offset for p in positions] == [1, 2, 3, 4, 5]
    client, position, history = _keys(redis_server, prefix, "a")
    assert client.hgetall(position) == {"offset": "5", "epoch": epoch_a}
    # Publishing trims whole stream nodes only (cheap); reading enforces the size exactly.
    assert 3 <= client.xlen(history) <= 5
    assert _read(client, prefix, "a", Position(2, epoch_a)) == [3, 4, 5]
    assert _read(client, prefix, "a", Position(1, epoch_a)) == []  # 4 behind: more than 3
    assert 59_000 < client.pttl(position) <= 60_000
    assert 59_000 < client.pttl(history) <= 60_000
    # Channels whose positions were made by the same script call share its fresh epoch:
    # an epoch is only ever compared with the same channel's.
    assert epoch_b == epoch_a
    client.close()


def test_history_is_bounded_by_age_and_an_idle_position_comes_back_in_a_new_epoch(
    settings: Any, redis_server: RedisServer, prefix: str
) -> None:
    settings.RTBRIDGE_HISTORY = {"size": 100, "ttl": 0.3}
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    client, position, history = _keys(redis_server, prefix, "a")
    [first] = backend.append([Message("a", "e", 1)])
    time.sleep(0.15)
    backend.append([Message("a", "e", 2)])
    time.sleep(0.2)
    # The first message is older than the ttl: the next publish trims it from history.
    [third] = backend.append([Message("a", "e", 3)])
    assert third["a"] == Position(3, first["a"].epoch)
    # The first message is older than the ttl: a read trims it, so from 0 nothing is
    # replayed (incomplete), while from 1 the two younger ones are.
    assert _read(client, prefix, "a", Position(1, first["a"].epoch)) == [2, 3]
    assert [fields["o"] for _id, fields in client.xrange(history)] == ["2", "3"]
    time.sleep(0.4)
    # Nothing published for the ttl: position and history are gone, a new epoch starts.
    assert not client.exists(position) and not client.exists(history)
    [fresh] = backend.append([Message("a", "e", 4)])
    assert fresh["a"].offset == 1 and fresh["a"].epoch != first["a"].epoch
    assert [fields["o"] for _id, fields in client.xrange(history)] == ["1"]
    client.close()


def test_history_off_still_gives_positions_and_keeps_nothing(
    settings: Any, redis_server: RedisServer, prefix: str
) -> None:
    settings.RTBRIDGE_HISTORY = None
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    positions = backend.append([Message("a", "e", n) for n in range(3)])
    assert [p["a"].offset for p in positions] == [1, 2, 3]
    client, position, history = _keys(redis_server, prefix, "a")
    assert client.exists(position) and not client.exists(history)
    client.close()


def test_a_flushed_script_cache_is_reloaded(redis_server: RedisServer, prefix: str) -> None:
    # What a Redis restart looks like to a long-lived Django process: NOSCRIPT, then a load.
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    backend.publish(Message("a", "e", 1))
    backend.client.script_flush()
    [second] = backend.append([Message("a", "e", 2)])
    assert second["a"].offset == 2


def test_a_bulk_publish_is_cut_in_script_calls_of_256(
    redis_server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    backend.publish(Message("warm", "e", 1))
    calls: list[int] = []
    original = type(backend.client).evalsha

    def counting(self: Any, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        calls.append(numkeys)
        return original(self, sha, numkeys, *keys_and_args)

    monkeypatch.setattr(type(backend.client), "evalsha", counting)
    positions = backend.append([Message("a", "e", n) for n in range(600)])
    assert [p["a"].offset for p in positions] == list(range(1, 601))
    assert calls == [512, 512, 176]  # two keys per channel of each message


async def test_async_append_gives_the_same_positions(
    settings: Any, redis_server: RedisServer, prefix: str
) -> None:
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    first = await backend.aappend([Message(["a", "b"], "e", 1)])
    second = backend.append([Message("a", "e", 2)])
    assert second[0]["a"] == Position(2, first[0]["a"].epoch)
    await backend.aclose()


def test_close_then_publish_reconnects(
    redis_server: RedisServer, prefix: str, subscriber: Any
) -> None:
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    backend.publish(Message("a", "e", 1))
    backend.close()
    backend.publish(Message("a", "e", 2))
    assert len(read(subscriber, 2)) == 2


def test_options_are_checked() -> None:
    with pytest.raises(ImproperlyConfigured, match="'bogus'"):
        RedisBackend(bogus=1)
    with pytest.raises(ImproperlyConfigured, match="not a Redis URL"):
        RedisBackend(url="http://127.0.0.1:6379")
    backend = RedisBackend(connection_options={"health_check_interval": 30}, max_connections=3)
    pool = backend.client.connection_pool
    assert pool.connection_kwargs["health_check_interval"] == 30
    assert pool.max_connections == 3


def test_load_backend_from_settings(settings: Any, redis_server: RedisServer) -> None:
    settings.RTBRIDGE_BACKEND = "redis"
    settings.RTBRIDGE_OPTIONS = {"url": redis_server.url, "prefix": "p:"}
    backend = load_backend()
    assert isinstance(backend, RedisBackend)
    assert (backend.url, backend.prefix) == (redis_server.url, "p:")


def test_client_config_shape(settings: Any) -> None:
    backend = RedisBackend(url="redis://:secret@127.0.0.1:6379/0")
    assert backend.client_config() == {"backend": "redis", "url": None, "path": "/rtbridge/ws"}
    settings.RTBRIDGE_SERVER = {"public_url": "wss://rt.example.com", "path": "/ws"}
    config = backend.client_config()
    assert config == {"backend": "redis", "url": "wss://rt.example.com/ws", "path": "/ws"}
    assert "secret" not in json.dumps(config)
    assert "secret" not in repr(backend)


def test_body_format_round_trip_and_rejects_foreign_bodies() -> None:
    # rtb1, without a position: what other programs may still publish (docs/server.md).
    message = Message("a", "e", {"k": [1, 2]})
    [(channel, body)] = encode_message(message, "x:")
    assert channel == b"x:{a}"
    assert decode_body(body) == ("e", None, b'{"k":[1,2]}')
    assert decode_message(body).offset is None
    for foreign in (b"", b"hello", b"rtb2\ne\n\n{}", b"rtb1\ne\n", b"rtb2\nx\nE\ne\n\n{}"):
        with pytest.raises(ValueError):
            decode_message(foreign)


def test_safe_url() -> None:
    assert safe_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert safe_url("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert safe_url("rediss://:pw@h:1") == "rediss://:***@h:1"


def test_revoke_stores_the_time_with_the_token_lifetime_and_tells_the_nodes(
    redis_server: RedisServer, prefix: str
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    # On the channel's own pub/sub channel: the nodes with subscribers there hear it.
    pubsub.subscribe(channel_key(prefix, "private-a.1"))
    pubsub.get_message(timeout=1)
    before = time.time()
    RedisBackend(url=redis_server.url, prefix=prefix).revoke("42", "private-a.1")
    key = revocation_key(prefix, "42", "private-a.1")
    assert before <= float(client.get(key)) <= time.time()  # type: ignore[arg-type]
    assert 3590 < client.ttl(key) <= 3600
    message = pubsub.get_message(timeout=5)
    assert message is not None
    version, event = message["data"].split(b"\n", 1)
    assert version == b"rtc1"
    assert json.loads(event) == {
        "t": "revoke",
        "u": "42",
        "c": "private-a.1",
        "at": float(client.get(key)),  # type: ignore[arg-type]
    }
    pubsub.close()
    client.close()


def test_revoke_when_redis_is_down_raises() -> None:
    backend = RedisBackend(url=f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    with pytest.raises(PublishError) as info:
        backend.revoke("1", "private-a")
    assert info.value.retryable
