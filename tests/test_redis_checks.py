"""System checks of where Redis is: the options shape, Redis Cluster slots, deploy-time checks."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks

from rtbridge import redis_wire
from rtbridge.checks import check_redis, check_redis_deploy
from rtbridge.redis_wire import key_slot, multi_key_operations
from tests.services import DATA_PASSWORD, RedisClusterNodes, RedisSentinelSet, free_port


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [m.id for m in messages]


def use(settings: Any, **options: Any) -> None:
    settings.RTBRIDGE_BACKEND = "redis"
    settings.RTBRIDGE_OPTIONS = options


def test_other_backends_are_not_checked(settings: Any) -> None:
    settings.RTBRIDGE_OPTIONS = {"cluster": "nonsense"}  # locmem: check_backend reports it
    assert check_redis() == []
    assert check_redis_deploy() == []


def test_a_bad_shape_is_named(settings: Any) -> None:
    use(settings, url="redis://h", sentinel={"sentinels": ["h"], "service_name": "m"})
    errors = check_redis()
    assert ids(errors) == ["rtbridge.E060"]
    assert "has 'url' and 'sentinel'" in errors[0].msg
    assert "One Redis, Sentinel or Cluster" in (errors[0].hint or "")


def test_one_redis_and_sentinel_have_no_slot_rule(settings: Any) -> None:
    use(settings, url="redis://127.0.0.1:6379/0")
    assert check_redis() == []
    use(settings, sentinel={"sentinels": ["h"], "service_name": "m"})
    assert check_redis() == []


def test_every_operation_of_a_channel_is_in_its_slot(settings: Any) -> None:
    use(settings, cluster={"startup_nodes": ["127.0.0.1:7000"]})
    assert check_redis() == []
    for channel in ("todo.todoitem;todo_list_id=1", "presence-todo.todolist.1"):
        for operation, keys in multi_key_operations("rtbridge:", channel).items():
            assert {key_slot(key) for key in keys} == {key_slot(channel)}, operation


def test_an_operation_across_slots_is_reported(settings: Any, monkeypatch: Any) -> None:
    # As the presence scripts were before their keys carried the channel's hash tag.
    def old_layout(prefix: str, channel: str) -> dict[str, list[str]]:
        return {"presence join": [f"{prefix}presence:{channel}", f"{prefix}presence-nodes"]}

    monkeypatch.setattr(redis_wire, "multi_key_operations", old_layout)
    use(settings, cluster={"startup_nodes": ["127.0.0.1:7000"]})
    errors = check_redis()
    assert ids(errors) == ["rtbridge.E061"]
    assert "presence join on 'todo.todoitem'" in errors[0].msg
    assert "CROSSSLOT" in errors[0].msg and "(slot " in errors[0].msg
    use(settings, url="redis://127.0.0.1:6379/0")
    assert check_redis() == []  # one Redis has no slots


def test_a_hash_tag_in_the_prefix_is_a_warning(settings: Any) -> None:
    use(settings, cluster={"startup_nodes": ["h:7000"]}, prefix="{rtbridge}:")
    assert ids(check_redis()) == ["rtbridge.W061"]


def test_deploy_check_on_a_live_cluster(settings: Any, redis_cluster: RedisClusterNodes) -> None:
    use(
        settings,
        cluster={"startup_nodes": redis_cluster.startup_nodes[:1], "password": DATA_PASSWORD},
    )
    assert check_redis_deploy() == []  # Redis 7 everywhere


def test_deploy_check_on_sentinel(settings: Any, redis_sentinel: RedisSentinelSet) -> None:
    use(settings, sentinel=redis_sentinel.options())
    assert check_redis_deploy() == []
    use(settings, sentinel=redis_sentinel.options(service_name="other"))
    errors = check_redis_deploy()
    assert ids(errors) == ["rtbridge.E063"]
    assert "No master found for 'other'" in errors[0].msg


@pytest.mark.parametrize("shape", ["url", "cluster"])
def test_deploy_check_when_redis_is_down(settings: Any, shape: str) -> None:
    port = free_port()
    if shape == "url":
        use(settings, url=f"redis://127.0.0.1:{port}/0")
    else:
        use(settings, cluster={"startup_nodes": [f"127.0.0.1:{port}"]})
    errors = check_redis_deploy()
    assert ids(errors) == ["rtbridge.E064"]
    assert f"127.0.0.1:{port}" in errors[0].msg
