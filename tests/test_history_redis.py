"""The ``"redis"`` history store against a real ``redis-server``: offsets, trims, restarts."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from rtbridge import conf
from rtbridge.exceptions import InvalidPosition, PublishError
from rtbridge.history import Position
from rtbridge.history_redis import RedisHistoryStore
from rtbridge.messages import Message
from rtbridge.redis_wire import history_key, position_key
from tests.services import RedisServer
from tests.test_history_db import check_contiguous, run_processes


@pytest.fixture
def make_store(settings: Any, redis_server: RedisServer) -> Any:
    created: list[RedisHistoryStore] = []

    def make(
        size: int = 1000, ttl: float = 600.0, server: RedisServer = redis_server
    ) -> RedisHistoryStore:
        settings.RTBRIDGE_REDIS = {"url": server.url, "prefix": f"t{len(created)}{time.time_ns()}:"}
        store = RedisHistoryStore(conf.HistorySettings(True, size, ttl, "redis"))
        created.append(store)
        return store

    yield make
    for store in created:
        store.close()


def publish(store: RedisHistoryStore, channel: str, count: int) -> list[int]:
    positions = store.append([Message(channel, "n", {"n": i}) for i in range(count)])
    return [assigned[channel].offset for assigned in positions]


def test_offsets_are_contiguous_per_channel_with_one_epoch_each(make_store: Any) -> None:
    store = make_store()
    assert publish(store, "a", 3) == [1, 2, 3]
    fan = store.append([Message(["a", "b"], "fan", 1), Message(["b"], "one", 2)])
    assert [{k: v.offset for k, v in p.items()} for p in fan] == [{"a": 4, "b": 1}, {"b": 2}]
    assert fan[0]["a"].epoch != fan[0]["b"].epoch
    assert fan[0]["b"].epoch == fan[1]["b"].epoch


def test_replay_and_its_answers(make_store: Any) -> None:
    store = make_store()
    store.append([Message("a", "said", {"t": "é ☕"}), Message("a", "said", 2, exclude="1.2")])
    store.append([Message("a", "said", 3)])
    current = store.replay("a", None)
    assert (current.offset, current.recovered) == (3, None)
    answer = store.replay("a", Position(1, current.epoch)).as_json()
    assert answer["recovered"] is True
    assert answer["messages"] == [
        {"offset": 2, "event": "said", "data": 2, "exclude": "1.2"},
        {"offset": 3, "event": "said", "data": 3, "exclude": None},
    ]
    assert store.replay("a", Position(0, current.epoch)).messages[0].payload == '{"t":"é ☕"}'
    assert store.replay("a", Position(3, current.epoch)).recovered is True
    assert store.replay("a", Position(1, "other")).recovered is False
    with pytest.raises(InvalidPosition):
        store.replay("a", Position(4, current.epoch))


def test_a_fresh_channel_keeps_the_epoch_it_answered(make_store: Any) -> None:
    store = make_store()
    fresh = store.replay("new", None)
    assert fresh.offset == 0
    assert store.append([Message("new", "n", 1)])[0]["new"] == Position(1, fresh.epoch)


def test_trimmed_by_size_or_age_is_not_recovered(make_store: Any) -> None:
    store = make_store(size=4, ttl=0.5)
    publish(store, "a", 6)
    epoch = store.replay("a", None).epoch
    # The stream is trimmed by whole nodes (MAXLEN ~, as the redis backend's); reads are exact.
    assert 4 <= store.client.xlen(history_key(store.prefix, "a")) <= 6
    assert store.replay("a", Position(2, epoch)).recovered is True
    assert store.replay("a", Position(1, epoch)).recovered is False
    time.sleep(0.3)
    publish(store, "a", 1)
    time.sleep(0.3)
    # Offsets 3..6 are older than ttl now, 7 is not: only a client at 6 recovers.
    assert store.replay("a", Position(2, epoch)).recovered is False
    answer = store.replay("a", Position(6, epoch))
    assert answer.recovered is True and [m.offset for m in answer.messages] == [7]


def test_a_quiet_channel_expires_and_comes_back_with_a_new_epoch(make_store: Any) -> None:
    store = make_store(ttl=0.3)
    publish(store, "a", 2)
    old = store.replay("a", None).epoch
    assert store.client.pttl(position_key(store.prefix, "a")) > 0
    time.sleep(0.4)
    assert store.client.exists(position_key(store.prefix, "a"), history_key(store.prefix, "a")) == 0
    renewed = store.append([Message("a", "n", 3)])[0]["a"]
    assert renewed.offset == 1 and renewed.epoch != old
    assert store.replay("a", Position(2, old)).recovered is False


def test_redis_restarted_empty_changes_the_epoch(make_store: Any, fresh_redis: RedisServer) -> None:
    store = make_store(server=fresh_redis)
    publish(store, "a", 3)
    old = store.replay("a", None).epoch
    fresh_redis.stop()
    with pytest.raises(PublishError, match="could not assign positions in Redis") as caught:
        store.append([Message("a", "n", 4)])
    assert caught.value.retryable
    fresh_redis.start()
    renewed = store.append([Message("a", "n", 5)])[0]["a"]
    assert renewed.offset == 1 and renewed.epoch != old
    answer = store.replay("a", Position(3, old))
    assert (answer.recovered, answer.offset, answer.epoch) == (False, 1, renewed.epoch)


def test_threads_get_contiguous_offsets(make_store: Any) -> None:
    store = make_store()
    results: list[int] = []
    start = threading.Barrier(4)

    def work() -> None:
        start.wait()
        for _ in range(25):
            results.extend(publish(store, "race", 2))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == list(range(1, 201))


def test_processes_get_contiguous_offsets(redis_server: RedisServer, tmp_path: Any) -> None:
    databases = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "x")}}
    redis = {"url": redis_server.url, "prefix": f"procs{time.time_ns()}:"}
    lines = run_processes(databases, processes=3, count=60, history={"store": "redis"}, redis=redis)
    check_contiguous(lines, 180)
