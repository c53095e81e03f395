"""rtbridge.redis_target: the options shape, the clients it builds, and which errors prove a command did not run."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.cluster

from rtbridge.exceptions import ImproperlyConfigured
from rtbridge.redis_target import (
    ClusterRedis,
    SentinelRedis,
    SingleRedis,
    acall_with_failover_wait,
    async_client,
    call_with_failover_wait,
    client_errors,
    from_options,
    not_run,
    sync_client,
)
from tests.services import (
    DATA_PASSWORD,
    RedisClusterNodes,
    RedisSentinelSet,
    RedisServer,
    free_port,
)


def error(options: dict[str, Any]) -> str:
    with pytest.raises(ImproperlyConfigured) as info:
        from_options(options, "RTBRIDGE_OPTIONS")
    return str(info.value)


def test_one_redis_by_default_and_by_url() -> None:
    assert from_options({}, "X") == SingleRedis("redis://127.0.0.1:6379/0", 0.0)
    target = from_options({"url": "redis://:pw@h:1/2", "failover_wait": 3}, "X")
    assert target == SingleRedis("redis://:pw@h:1/2", 3.0)
    assert target.describe() == "redis://:***@h:1/2"
    assert "not a Redis URL" in error({"url": ""})


def test_sentinel_options() -> None:
    target = from_options(
        {
            "sentinel": {
                "sentinels": ["10.0.0.1:26380", ("10.0.0.2", 26381), "sentinel-3", "[::1]:26382"],
                "service_name": "mymaster",
                "db": 2,
                "password": "data-secret",
                "sentinel_password": "sentinel-secret",
            }
        },
        "X",
    )
    assert target == SentinelRedis(
        sentinels=(("10.0.0.1", 26380), ("10.0.0.2", 26381), ("sentinel-3", 26379), ("::1", 26382)),
        service_name="mymaster",
        db=2,
        password="data-secret",
        sentinel_password="sentinel-secret",
        failover_wait=10.0,
    )
    # Passwords never show in descriptions or reprs (they end up in logs and errors).
    for text in (target.describe(), repr(target)):
        assert "secret" not in text
    assert target.describe() == (
        "sentinel 'mymaster' via 10.0.0.1:26380,10.0.0.2:26381,sentinel-3:26379,::1:26382 db 2"
    )


def test_cluster_options() -> None:
    target = from_options(
        {"cluster": {"startup_nodes": ["a:7000", "b"], "password": "pw"}, "failover_wait": 0},
        "X",
    )
    assert target == ClusterRedis((("a", 7000), ("b", 6379)), password="pw", failover_wait=0.0)
    assert target.describe() == "cluster a:7000,b:6379"
    assert "pw" not in repr(target)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"url": "redis://h", "cluster": {}}, "has 'url' and 'cluster'; give one of 'url'"),
        ({"sentinel": "h:26379"}, "RTBRIDGE_OPTIONS['sentinel'] must be a dict with the keys"),
        ({"sentinel": {"sentinels": ["h:1"]}}, "['sentinel']['service_name']=None is not valid"),
        (
            {"sentinel": {"sentinels": "h:1", "service_name": "m"}},
            "['sentinel']['sentinels']='h:1' is not valid; give a non-empty list",
        ),
        (
            {"sentinel": {"sentinels": [("h", "1")], "service_name": "m"}},
            "has ('h', '1'), which is not an address",
        ),
        (
            {"sentinel": {"sentinels": ["h:99999"], "service_name": "m"}},
            "has 'h:99999', which is not an address",
        ),
        (
            {"sentinel": {"sentinels": ["h"], "service_name": "m", "db": "0"}},
            "['sentinel']['db']='0' is not valid",
        ),
        (
            {"sentinel": {"sentinels": ["h"], "service_name": "m", "password": 1}},
            "['sentinel']['password'] must be a string or None",
        ),
        (
            {"sentinel": {"sentinels": ["h"], "service_name": "m", "ssl": "yes"}},
            "['sentinel']['ssl']='yes' is not valid; give True or False",
        ),
        ({"cluster": {"startup_nodes": []}}, "['cluster']['startup_nodes']=[] is not valid"),
        ({"cluster": {"startup_nodes": ["a"], "db": 1}}, "Redis Cluster has only database 0"),
        ({"failover_wait": True}, "RTBRIDGE_OPTIONS['failover_wait']=True is not valid"),
    ],
)
def test_bad_options_are_named(options: dict[str, Any], expected: str) -> None:
    assert expected in error(options)


# Which errors prove that a command did not run -------------------------------------------
# These make redis-py raise the real thing, so a change in redis-py's errors fails here.


def test_a_refused_connection_did_not_run() -> None:
    client = redis.Redis(port=free_port(), socket_connect_timeout=0.5)
    with pytest.raises(redis.exceptions.ConnectionError) as info:
        client.ping()
    assert not_run(info.value)


async def test_a_refused_connection_did_not_run_async() -> None:
    client = redis.asyncio.Redis(port=free_port(), socket_connect_timeout=0.5)
    with pytest.raises(redis.exceptions.ConnectionError) as info:
        await client.ping()
    assert not_run(info.value)
    await client.aclose()


def test_a_connection_lost_while_waiting_for_the_answer_may_have_run(
    fresh_redis: RedisServer,
) -> None:
    # Through the factory: redis-py's own retries (on by default) would reconnect, fail to
    # connect, and raise that instead, hiding that the first try was sent.
    client = sync_client(SingleRedis(fresh_redis.url), socket_timeout=None)
    client.ping()
    caught: list[BaseException] = []

    def wait() -> None:
        try:
            client.blpop(["never"], timeout=10)
        except client_errors() as exc:
            caught.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)  # BLPOP sent and waiting
    fresh_redis.kill()
    waiter.join(10)
    assert len(caught) == 1
    assert not not_run(caught[0]), caught[0]


def test_a_wrong_password_is_not_waited_for(redis_sentinel: RedisSentinelSet) -> None:
    client = redis.Redis(port=redis_sentinel.primary().port, password="wrong")
    with pytest.raises(redis.exceptions.AuthenticationError) as info:
        client.ping()
    assert not not_run(info.value)


def test_a_write_on_a_replica_did_not_run(redis_sentinel: RedisSentinelSet) -> None:
    replica = redis_sentinel.replica().client()
    with pytest.raises(redis.exceptions.ReadOnlyError) as info:
        replica.set("rtbridge-test", 1)
    assert not_run(info.value)
    # A script stops at its first write, before anything is written.
    script = "redis.call('SET', KEYS[1], '1') return 1"
    with pytest.raises(redis.exceptions.ReadOnlyError) as info:
        replica.eval(script, 1, "rtbridge-test")
    assert not_run(info.value)
    replica.close()


def test_an_unreachable_cluster_did_not_run() -> None:
    with pytest.raises(redis.exceptions.RedisClusterException) as info:
        redis.cluster.RedisCluster(  # it reads the slot map as it is made
            startup_nodes=[redis.cluster.ClusterNode("127.0.0.1", free_port())],
            socket_connect_timeout=0.5,
        )
    assert not_run(info.value)


def test_failover_wait_bounds_the_tries() -> None:
    target = SingleRedis(f"redis://127.0.0.1:{free_port()}/0", failover_wait=0.3)
    client = sync_client(target, socket_connect_timeout=0.2)
    calls = 0

    def ping() -> Any:
        nonlocal calls
        calls += 1
        return client.ping()

    started = time.monotonic()
    with pytest.raises(redis.exceptions.ConnectionError):
        call_with_failover_wait(target, ping)
    assert 0.3 <= time.monotonic() - started < 1.5
    assert calls >= 3  # 50 ms, 100 ms, 150 ms (the rest of the budget)
    # Nothing is tried again without a wait, and errors that may have run are raised at once.
    calls = 0
    with pytest.raises(redis.exceptions.ConnectionError):
        call_with_failover_wait(SingleRedis(target.url), ping)
    assert calls == 1


async def test_failover_wait_async(fresh_redis: RedisServer) -> None:
    target = SingleRedis(fresh_redis.url, failover_wait=5)
    client = async_client(target, socket_connect_timeout=0.2)
    fresh_redis.stop()
    restarted = threading.Timer(0.5, fresh_redis.start)
    restarted.start()
    started = time.monotonic()
    assert await acall_with_failover_wait(target, client.ping) is True
    assert 0.4 < time.monotonic() - started < 5
    restarted.join()
    await client.aclose()


# Clients -----------------------------------------------------------------------------------


async def test_clients_for_each_target(
    redis_server: RedisServer,
    redis_sentinel: RedisSentinelSet,
    redis_cluster: RedisClusterNodes,
) -> None:
    targets = [
        from_options({"url": redis_server.url}, "X"),
        from_options({"sentinel": redis_sentinel.options()}, "X"),
        from_options(
            {"cluster": {"startup_nodes": redis_cluster.startup_nodes, "password": DATA_PASSWORD}},
            "X",
        ),
    ]
    for target in targets:
        client = sync_client(target)
        assert client.set("rtbridge:factory-test", target.mode) is True
        assert client.get("rtbridge:factory-test") == target.mode.encode()
        client.close()
        aclient = async_client(target)
        assert await aclient.get("rtbridge:factory-test") == target.mode.encode()
        await aclient.aclose()
    assert redis_sentinel.primary().client().get("rtbridge:factory-test") == b"sentinel"
