"""The testing helpers: the outbox fixture, assert_published and the TestCase mixin."""

from __future__ import annotations

import pytest
from django.test import SimpleTestCase

import rtbridge
from rtbridge.testing import RTBridgeTestMixin, assert_not_published, assert_published


def test_assert_published_matches_and_returns(rtbridge_outbox):
    rtbridge.publish(["a", "b"], "ev", {"x": 1, "y": 2})
    assert len(assert_published("b", "ev", {"x": 1, "y": 2})) == 1
    assert_published(data_contains={"y": 2}, count=1)
    assert_not_published("c")
    assert_not_published("a", "other")


def test_failure_shows_outbox_and_a_diff(rtbridge_outbox):
    rtbridge.publish("a", "ev", {"name": "Groceries", "n": 1})
    with pytest.raises(AssertionError) as info:
        assert_published("a", "ev", {"name": "Grocery", "n": 1})
    text = str(info.value)
    assert "found 0" in text and "outbox has 1 message(s)" in text
    assert "-{'n': 1, 'name': 'Grocery'}" in text
    assert "+{'n': 1, 'name': 'Groceries'}" in text
    with pytest.raises(AssertionError, match="expected 2 message"):
        assert_published("a", count=2)


class MixinTests(RTBridgeTestMixin, SimpleTestCase):
    def test_routes_to_locmem_and_starts_empty(self) -> None:
        self.assertEqual(rtbridge.outbox, [])
        rtbridge.publish("a", "ev", 1)
        self.assertPublished("a", "ev", 1)
