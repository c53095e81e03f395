"""Testing helpers: an outbox fixture, a TestCase mixin and ``assert_published``.

Installed as a pytest plugin (entry point ``rtbridge``), so the ``rtbridge_outbox`` fixture is
available in every project that has rtbridge installed.
"""

from __future__ import annotations

import difflib
import pprint
from collections.abc import Iterator
from typing import Any

import pytest

import rtbridge

from .messages import Message

__all__ = ["RTBridgeTestMixin", "assert_not_published", "assert_published", "rtbridge_outbox"]

_ANY = object()


def _matches(message: Message, channel: Any, event: Any, data: Any, data_contains: Any) -> bool:
    if channel is not _ANY and channel not in message.channels:
        return False
    if event is not _ANY and message.event != event:
        return False
    if data is not _ANY and message.data != data:
        return False
    if data_contains is not _ANY:
        if not isinstance(message.data, dict):
            return False
        return all(message.data.get(k, _ANY) == v for k, v in data_contains.items())
    return True


def _describe(message: Message) -> str:
    return pprint.pformat(
        {"channels": list(message.channels), "event": message.event, "data": message.data},
        sort_dicts=True,
        width=88,
    )


def assert_published(
    channel: Any = _ANY,
    event: Any = _ANY,
    data: Any = _ANY,
    *,
    data_contains: Any = _ANY,
    count: int | None = None,
    outbox: list[Message] | None = None,
) -> list[Message]:
    """Assert that a message matching every given criterion is in the outbox; return the matches.

    ``channel`` must be one of the message's channels; ``data`` must be equal (as a client
    receives it: datetimes as ISO strings); ``data_contains`` only needs those keys equal.
    ``count`` demands exactly that many matches. The failure shows every published message and
    a diff against the closest one.
    """
    box = rtbridge.outbox if outbox is None else outbox
    matches = [m for m in box if _matches(m, channel, event, data, data_contains)]
    if (count is None and matches) or (count is not None and len(matches) == count):
        return matches
    wanted = {
        key: value
        for key, value in (
            ("channel", channel),
            ("event", event),
            ("data", data),
            ("data_contains", data_contains),
        )
        if value is not _ANY
    }
    lines = [
        f"expected {'a message' if count is None else f'{count} message(s)'} matching "
        f"{wanted!r}, found {len(matches)}.",
        f"outbox has {len(box)} message(s):",
    ]
    lines += [f"  [{i}] {_describe(m)}" for i, m in enumerate(box)]
    if box and data is not _ANY:
        expected = pprint.pformat(data, sort_dicts=True, width=88).splitlines()
        closest = max(
            box,
            key=lambda m: (
                (channel is _ANY or channel in m.channels) + (event is _ANY or m.event == event),
                difflib.SequenceMatcher(None, repr(m.data), repr(data)).ratio(),
            ),
        )
        actual = pprint.pformat(closest.data, sort_dicts=True, width=88).splitlines()
        lines.append("diff of data (- expected, + closest published):")
        lines += list(difflib.unified_diff(expected, actual, lineterm="", n=2))[2:]
    raise AssertionError("\n".join(lines))


def assert_not_published(
    channel: Any = _ANY, event: Any = _ANY, *, outbox: list[Message] | None = None
) -> None:
    """Assert that no message on ``channel`` with ``event`` is in the outbox."""
    assert_published(channel, event, count=0, outbox=outbox)


class RTBridgeTestMixin:
    """TestCase mixin: route publishing to ``locmem`` and start each test with an empty outbox.

    Model changes publish on commit; in a ``TestCase`` use
    ``self.captureOnCommitCallbacks(execute=True)`` around the code under test.
    """

    def setUp(self) -> None:
        from django.test import override_settings

        override = override_settings(RTBRIDGE_BACKEND="locmem", RTBRIDGE_OPTIONS={})
        override.enable()
        self.addCleanup(override.disable)  # type: ignore[attr-defined]
        rtbridge.outbox.clear()
        self.addCleanup(rtbridge.outbox.clear)  # type: ignore[attr-defined]
        super().setUp()  # type: ignore[misc]

    def assertPublished(self, *args: Any, **kwargs: Any) -> list[Message]:
        """Unittest-style alias of :func:`assert_published`."""
        return assert_published(*args, **kwargs)


@pytest.fixture
def rtbridge_outbox(settings: Any) -> Iterator[list[Message]]:
    """Route publishing to ``locmem`` and yield the (empty) ``rtbridge.outbox``."""
    settings.RTBRIDGE_BACKEND = "locmem"
    settings.RTBRIDGE_OPTIONS = {}
    rtbridge.outbox.clear()
    yield rtbridge.outbox
    rtbridge.outbox.clear()
