"""backend_class(): the one loader from an alias or dotted path to a BaseBackend subclass."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from rtbridge.backends.loading import backend_class
from rtbridge.backends.locmem import LocMemBackend
from rtbridge.backends.pusher import PusherBackend


def test_aliases_and_dotted_paths_name_the_class(settings) -> None:
    assert backend_class("pusher") is PusherBackend
    assert backend_class("rtbridge.backends.pusher.PusherBackend") is PusherBackend
    settings.RTBRIDGE_BACKEND = "locmem"
    assert backend_class() is LocMemBackend


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("nosuch", "not a known alias"),
        ("nosuch.module.Backend", "'nosuch.module.Backend', which cannot be imported"),
        ("rtbridge.messages.Message", "not a subclass of rtbridge.backends.base.BaseBackend"),
    ],
)
def test_bad_paths_are_named(path: str, error: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=error):
        backend_class(path)
