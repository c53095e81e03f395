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
