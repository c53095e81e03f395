"""``RedisBackend`` against a real redis-server: body format, pipelining, errors, options."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from rtbridge.backends.redis import RedisBackend
from rtbridge.exceptions import ImproperlyConfigured, PublishError
from rtbridge.messages import Message
from rtbridge.publishers import load_backend
from rtbridge.redis_wire import decode_body, encode_message, safe_url
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


def test_publish_puts_one_body_per_channel_with_the_payload_untouched(
    redis_server: RedisServer, prefix: str, subscriber: Any
) -> None:
    backend = RedisBackend(url=redis_server.url, prefix=prefix)
    message = Message(["a", "b.1"], "created", {"text": "é\nnew line", "n": 1.5}, exclude="x.1")
    backend.publish(message)
    got = read(subscriber, 2)
    assert [channel for channel, _ in got] == [f"{prefix}a", f"{prefix}b.1"]
    for _, body in got:
        event, exclude, payload = decode_body(body)
        assert (event, exclude) == ("created", "x.1")
        assert payload == message.payload.encode()
        assert json.loads(payload) == {"text": "é\nnew line", "n": 1.5}
    assert got[0][1].startswith(b"rtb1\ncreated\nx.1\n")


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

    monkeypatch.setattr(connection_class, "send_packed_command", counting)
    backend.publish(Message([f"c{i}" for i in range(10)], "e", 1))
    assert len(sends) == 1
    backend.publish_many([Message("d", "e", i) for i in range(20)])
    assert len(sends) == 2
    assert len(read(subscriber, 30)) == 30


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
    assert backend._pool_kwargs()["health_check_interval"] == 30


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
    message = Message("a", "e", {"k": [1, 2]})
    [(channel, body)] = encode_message(message, "x:")
    assert channel == b"x:a"
    assert decode_body(body) == ("e", None, b'{"k":[1,2]}')
    for foreign in (b"", b"hello", b"rtb2\ne\n\n{}", b"rtb1\ne\n"):
        with pytest.raises(ValueError):
            decode_body(foreign)


def test_safe_url() -> None:
    assert safe_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert safe_url("redis://user:pw@h:1/0") == "redis://user:***@h:1/0"
    assert safe_url("rediss://:pw@h:1") == "rediss://:***@h:1"


def test_revoke_stores_the_time_with_the_token_lifetime_and_tells_the_nodes(
    redis_server: RedisServer, prefix: str
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"{prefix}!node")
    pubsub.get_message(timeout=1)
    before = time.time()
    RedisBackend(url=redis_server.url, prefix=prefix).revoke("42", "private-a.1")
    key = f"{prefix}revoked:private-a.1|42"
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
