"""The hosted backends' ``"redis"`` history store on Redis Sentinel and Redis Cluster.

Real servers (``tests/services.py``): a Sentinel set whose primary is SIGKILLed while Django
appends, and a 3-primary Cluster with channels on every primary.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest

from rtbridge import conf
from rtbridge.exceptions import ImproperlyConfigured, PublishError
from rtbridge.history import Position
from rtbridge.history_redis import RedisHistoryStore
from rtbridge.messages import Message
from rtbridge.redis_target import ClusterRedis, SentinelRedis
from rtbridge.redis_wire import key_slot, position_key
from tests.services import DATA_PASSWORD, RedisClusterNodes, RedisSentinelSet


def store_for(settings: Any, **where: Any) -> RedisHistoryStore:
    settings.RTBRIDGE_REDIS = {"prefix": f"h{secrets.token_hex(4)}:", **where}
    return RedisHistoryStore(conf.HistorySettings(True, 1000, 600.0, "redis"))


def test_redis_settings_take_sentinel_or_cluster_instead_of_url(settings: Any) -> None:
    settings.RTBRIDGE_REDIS = {"sentinel": {"sentinels": ["127.0.0.1:1"], "service_name": "m"}}
    assert "url" not in conf.redis_settings()
    store = RedisHistoryStore(conf.HistorySettings(True, 10, 60.0, "redis"))
    assert isinstance(store.target, SentinelRedis) and store.url is None
    settings.RTBRIDGE_REDIS = {"url": "redis://127.0.0.1:1/0", "cluster": {"startup_nodes": []}}
    with pytest.raises(ImproperlyConfigured, match=r"'url' and 'cluster'.*give one of"):
        RedisHistoryStore(conf.HistorySettings(True, 10, 60.0, "redis"))
    settings.RTBRIDGE_REDIS = {"sentinel": {"sentinels": ["127.0.0.1:1"]}}
    with pytest.raises(
        ImproperlyConfigured, match=r"RTBRIDGE_REDIS\['sentinel'\]\['service_name'\]"
    ):
        RedisHistoryStore(conf.HistorySettings(True, 10, 60.0, "redis"))
    settings.RTBRIDGE_REDIS = {"sentinels": []}
    with pytest.raises(ImproperlyConfigured, match="unknown key 'sentinels'; known keys: url, "):
        conf.redis_settings()


def test_sigkill_of_the_sentinel_primary_while_appending(
    settings: Any, redis_sentinel: RedisSentinelSet
) -> None:
    store = store_for(settings, sentinel=redis_sentinel.options(), failover_wait=15.0)
    offsets: list[int] = []
    epochs: set[str] = set()
    failed = 0
    old = redis_sentinel.primary()
    killed_at = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(offsets) == 30 and killed_at is None:
            old.kill()
            killed_at = time.monotonic()
        try:
            position = store.append([Message("stream", "n", len(offsets))])[0]["stream"]
        except PublishError:
            failed += 1  # only the append in flight when the primary died may fail
            continue
        offsets.append(position.offset)
        epochs.add(position.epoch)
        if killed_at is not None and time.monotonic() - killed_at > 1 and len(offsets) > 60:
            break
    redis_sentinel.wait_for_new_primary(old)
    assert killed_at is not None and len(offsets) > 60, "appends did not go on after the failover"
    assert failed <= 1
    # One epoch and contiguous offsets: the replica had them all (or the epoch changed and a
    # resume says so); never an offset given out twice.
    assert len(set(offsets)) == len(offsets), "an offset was given out twice"
    if len(epochs) == 1:
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
        answer = store.replay("stream", Position(offsets[0], epochs.pop()))
        assert answer.recovered is True
        assert [m.offset for m in answer.messages] == offsets[1:]
    store.close()


def test_cluster_channels_on_every_primary_in_one_batch(
    settings: Any, redis_cluster: RedisClusterNodes
) -> None:
    store = store_for(
        settings,
        cluster={"startup_nodes": redis_cluster.startup_nodes[:2], "password": DATA_PASSWORD},
    )
    assert isinstance(store.target, ClusterRedis)
    names = [f"room.{n}" for n in range(12)]
    assert len({key_slot(position_key(store.prefix, name)) // 5462 for name in names}) == 3
    first = store.append([Message(names, "fan", 0), Message(names[:3], "some", 1)])
    assert [first[0][name].offset for name in names] == [1] * 12
    assert [first[1][name].offset for name in names[:3]] == [2, 2, 2]
    for name in names:
        top = store.replay(name, None)
        answer = store.replay(name, Position(0, top.epoch))
        assert answer.recovered is True
        assert [m.event for m in answer.messages] == (
            ["fan", "some"] if name in names[:3] else ["fan"]
        )
    store.close()
