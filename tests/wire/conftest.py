"""Fixtures for the wire tests; test modules elsewhere import them from here."""

from tests.wire.fixtures import fake_firebase, fake_pubnub, fake_pusher_api, soketi

__all__ = ["fake_firebase", "fake_pubnub", "fake_pusher_api", "soketi"]
