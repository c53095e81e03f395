"""The publish API: backend selection, caching, validation before I/O, async, fail_silently."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

import rtbridge
from rtbridge import conf, publishers
from rtbridge.backends.base import BaseBackend
from rtbridge.backends.console import ConsoleBackend
from rtbridge.backends.dummy import DummyBackend
from rtbridge.backends.locmem import LocMemBackend
from rtbridge.exceptions import InvalidMessage, PayloadTooLarge, PublishError
from rtbridge.messages import Message


class RecordingBackend(BaseBackend):
    """Counts calls and the thread each ran on."""

    calls: list[tuple[str, Any]] = []

    def __init__(self, *, fail: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.fail = fail

    def publish(self, message: Message) -> None:
        type(self).calls.append(("publish", threading.current_thread().name))
        if self.fail:
            raise PublishError("transport down", status=503, retryable=True)


@pytest.fixture(autouse=True)
def _clean() -> Any:
    RecordingBackend.calls = []
    publishers.reset_backend()
    yield
    publishers.reset_backend()


def test_publish_through_locmem_returns_the_message(rtbridge_outbox):
    message = rtbridge.publish("todo.todolist.1", "renamed", {"name": "Groceries"})
    assert isinstance(message, Message)
    assert [(m.channels, m.event, m.data) for m in rtbridge_outbox] == [
        (("todo.todolist.1",), "renamed", {"name": "Groceries"})
    ]


def test_aliases_and_dotted_paths(settings):
    for alias, cls in [
        ("locmem", LocMemBackend),
        ("dummy", DummyBackend),
        ("console", ConsoleBackend),
    ]:
        settings.RTBRIDGE_BACKEND = alias
        assert type(rtbridge.get_backend()) is cls
    settings.RTBRIDGE_BACKEND = "rtbridge.backends.dummy.DummyBackend"
    assert type(rtbridge.get_backend()) is DummyBackend


def test_backend_is_cached_and_reset_by_override_settings():
    first = rtbridge.get_backend()
    assert rtbridge.get_backend() is first
    with override_settings(RTBRIDGE_BACKEND="dummy"):
        assert type(rtbridge.get_backend()) is DummyBackend
    assert type(rtbridge.get_backend()) is LocMemBackend
    assert rtbridge.get_backend() is not first
    with override_settings(RTBRIDGE_OPTIONS={"max_payload_bytes": 10}):
        assert rtbridge.get_backend().max_payload_bytes == 10


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("nosuch", "'nosuch' is not a known alias; give one of 'local', 'redis'"),
        ("", "RTBRIDGE_BACKEND='' is not valid"),
        (5, "RTBRIDGE_BACKEND=5 is not valid"),
        ("nosuch.module.Backend", "cannot be imported"),
        ("rtbridge.messages.Message", "not a subclass of rtbridge.backends.base.BaseBackend"),
    ],
)
def test_bad_backend_setting(settings, value, match):
    settings.RTBRIDGE_BACKEND = value
    with pytest.raises(ImproperlyConfigured, match=match):
        rtbridge.publish("a", "b")


def test_bad_options(settings):
    settings.RTBRIDGE_OPTIONS = {"nope": 1}
    with pytest.raises(ImproperlyConfigured, match=r"LocMemBackend got unknown option\(s\) 'nope'"):
        rtbridge.get_backend()
    settings.RTBRIDGE_OPTIONS = ["x"]
    with pytest.raises(ImproperlyConfigured, match="must be a dict"):
        rtbridge.get_backend()


def test_missing_sdk_names_the_pip_extra():
    class VendorBackend(BaseBackend):
        alias = "vendor"
        sdk = ("rtbridge_no_such_sdk", "vendor")

    with pytest.raises(ImproperlyConfigured, match=r"pip install 'rtbridge\[vendor\]'"):
        VendorBackend.check_sdk()


def test_validation_happens_before_the_backend_is_called(settings):
    settings.RTBRIDGE_BACKEND = "tests.test_publishers.RecordingBackend"
    with pytest.raises(InvalidMessage):
        rtbridge.publish(["ok", "not ok"], "ev", {})
    with pytest.raises(InvalidMessage):
        rtbridge.publish("ok", "ev", {"x": object()})
    assert RecordingBackend.calls == []


def test_size_limit_of_the_active_backend(settings, rtbridge_outbox):
    settings.RTBRIDGE_OPTIONS = {"max_payload_bytes": 50}
    rtbridge.publish("a", "ev", "x" * 40)
    with pytest.raises(PayloadTooLarge, match="at most 50 bytes"):
        rtbridge.publish("a", "ev", "x" * 60)
    assert len(rtbridge_outbox) == 1


def test_publish_error_raises_and_fail_silently_counts(settings, caplog):
    settings.RTBRIDGE_BACKEND = "tests.test_publishers.RecordingBackend"
    settings.RTBRIDGE_OPTIONS = {"fail": True}
    with pytest.raises(PublishError, match="transport down") as info:
        rtbridge.publish("a", "ev")
    assert info.value.status == 503 and info.value.retryable
    settings.RTBRIDGE_OPTIONS = {"fail": True, "fail_silently": True}
    with caplog.at_level(logging.WARNING, logger="rtbridge.backends"):
        rtbridge.publish("a", "ev")
        asyncio.run(rtbridge.apublish(["a", "b"], "ev"))
    assert rtbridge.get_backend().failed_count == 2
    assert "dropped 1 message(s) (fail_silently=True): transport down" in caplog.text


async def test_apublish_does_not_block_the_event_loop(settings):
    settings.RTBRIDGE_BACKEND = "tests.test_publishers.RecordingBackend"
    loop_thread = threading.current_thread().name
    message = await rtbridge.apublish(["a", "b"], "ping", {"n": 1})
    assert message.channels == ("a", "b")
    assert RecordingBackend.calls and RecordingBackend.calls[0][1] != loop_thread


def test_publish_many_default_and_console_logging(caplog):
    backend = ConsoleBackend(level="DEBUG")
    with caplog.at_level(logging.DEBUG, logger="rtbridge.console"):
        backend.publish_many([Message("a", "one", 1), Message(["a", "b"], "two", 2, exclude="s.1")])
    assert [r.getMessage() for r in caplog.records] == [
        "publish one on a: 1",
        "publish two on a,b (exclude s.1): 2",
    ]
    with pytest.raises(ImproperlyConfigured, match="level='LOUD' is not a logging level"):
        ConsoleBackend(level="LOUD")


def test_settings_are_read_lazily_with_defaults(settings):
    del settings.RTBRIDGE_BACKEND
    assert conf.get_setting("RTBRIDGE_BACKEND") == "local"
    with pytest.raises(KeyError, match="not an rtbridge setting"):
        conf.get_setting("RTBRIDGE_NOPE")


def test_import_rtbridge_imports_no_vendor_sdk():
    import subprocess
    import sys

    code = (
        "import sys, rtbridge; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('pusher','pubnub','firebase_admin','redis','tornado','rest_framework')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
