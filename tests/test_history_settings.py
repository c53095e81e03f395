"""``conf.history()``: the defaults of ``RTBRIDGE_HISTORY``, turning it off, and every bad value."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from rtbridge import conf


def test_defaults(settings: Any) -> None:
    del settings.RTBRIDGE_HISTORY
    assert conf.history() == conf.HistorySettings(
        enabled=True, size=1000, ttl=600.0, store="database"
    )


def test_missing_keys_take_their_default(settings: Any) -> None:
    settings.RTBRIDGE_HISTORY = {"size": 5, "store": "redis"}
    assert conf.history() == conf.HistorySettings(enabled=True, size=5, ttl=600.0, store="redis")


@pytest.mark.parametrize("value", [None, {"enabled": False}])
def test_off(settings: Any, value: Any) -> None:
    settings.RTBRIDGE_HISTORY = value
    assert conf.history().enabled is False


def test_a_dotted_path_names_a_custom_store(settings: Any) -> None:
    settings.RTBRIDGE_HISTORY = {"store": "myapp.history.Store"}
    assert conf.history().store == "myapp.history.Store"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"sise": 10}, "unknown key 'sise'; known keys: enabled, size, ttl, store"),
        ({"size": 0}, "RTBRIDGE_HISTORY['size']=0 is not valid"),
        ({"size": True}, "RTBRIDGE_HISTORY['size']=True is not valid"),
        ({"size": 1.5}, "RTBRIDGE_HISTORY['size']=1.5 is not valid"),
        ({"ttl": 0}, "RTBRIDGE_HISTORY['ttl']=0 is not valid"),
        ({"ttl": "600"}, "RTBRIDGE_HISTORY['ttl']='600' is not valid"),
        ({"enabled": "yes"}, "RTBRIDGE_HISTORY['enabled']='yes' is not valid"),
        (
            {"store": "memcached"},
            "RTBRIDGE_HISTORY['store']='memcached' is not valid; give 'database' or 'redis'",
        ),
        ([("size", 1)], "RTBRIDGE_HISTORY must be a dict"),
    ],
)
def test_bad_values_are_named(settings: Any, value: Any, error: str) -> None:
    settings.RTBRIDGE_HISTORY = value
    with pytest.raises(ImproperlyConfigured) as caught:
        conf.history()
    assert error in str(caught.value)


def test_redis_settings_defaults_and_errors(settings: Any) -> None:
    del settings.RTBRIDGE_REDIS
    assert conf.redis_settings() == conf.REDIS_DEFAULTS
    settings.RTBRIDGE_REDIS = {"url": "redis://10.0.0.2:6380/1"}
    assert conf.redis_settings()["url"] == "redis://10.0.0.2:6380/1"
    for value, error in [
        ({"host": "x"}, "unknown key 'host'; known keys: url, prefix"),
        ({"url": "http://x"}, "RTBRIDGE_REDIS['url']='http://x' is not a Redis URL"),
        ({"prefix": 1}, "RTBRIDGE_REDIS['prefix']=1 is not a string"),
        ({"socket_timeout": 0}, "RTBRIDGE_REDIS['socket_timeout']=0 is not valid"),
        ("redis://x", "RTBRIDGE_REDIS must be a dict"),
    ]:
        settings.RTBRIDGE_REDIS = value
        with pytest.raises(ImproperlyConfigured) as caught:
            conf.redis_settings()
        assert error in str(caught.value)


def test_a_store_that_is_not_a_history_store_is_named(settings: Any) -> None:
    from rtbridge.history import load_store

    settings.RTBRIDGE_HISTORY = {"store": "rtbridge.conf.HistorySettings"}
    with pytest.raises(
        ImproperlyConfigured, match="is not a subclass of rtbridge.history.HistoryStore"
    ):
        load_store()
    settings.RTBRIDGE_HISTORY = {"store": "nowhere.Store"}
    with pytest.raises(ImproperlyConfigured, match="'nowhere.Store' cannot be imported"):
        load_store()
    settings.RTBRIDGE_HISTORY = None
    assert load_store() is None
