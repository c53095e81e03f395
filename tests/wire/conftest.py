"""Fixtures for the wire tests; test modules elsewhere import them from here."""

from collections.abc import Iterator

import pytest

from tests.wire.fixtures import fake_firebase, fake_pubnub, fake_pusher_api, soketi
from tests.wire.pages import Page

__all__ = ["fake_firebase", "fake_pubnub", "fake_pusher_api", "pages", "soketi"]


@pytest.fixture
def pages() -> Iterator[list[Page]]:
    """Pages a test opened (append them); closed after the test."""
    opened: list[Page] = []
    yield opened
    for page in opened:
        page.close()
