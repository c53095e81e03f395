"""GrantLedger: the protected channels one connection was granted, per user and connection."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from rtbridge.backends import grants
from rtbridge.backends.grants import GrantLedger


def test_grant_ledger_collects_per_user_and_connection(monkeypatch: Any) -> None:
    cache.clear()
    ledger = GrantLedger("test", ttl=60, limit=3)
    assert ledger.add("1", "s", "a") == {"a": True}
    assert ledger.add("1", "s", "b", "m") == {"a": True, "b": "m"}
    assert ledger.add("2", "s", "c") == {"c": True}, "another user, same socket"
    assert ledger.add("1", "t", "d") == {"d": True}, "same user, another socket"
    assert list(ledger.add("1", "s", "a")) == ["b", "a"], "a renewed grant is the newest"
    assert list(ledger.add("1", "s", "e")) == ["b", "a", "e"]
    assert list(ledger.add("1", "s", "f")) == ["a", "e", "f"], "the oldest goes beyond limit"
    now = grants.time.time()
    monkeypatch.setattr(grants.time, "time", lambda: now + 61)
    assert ledger.add("1", "s", "g") == {"g": True}, "grants older than ttl are dropped"
    assert ledger.add(None, "s", "h") == {"h": True}
    assert ledger.add(None, "s", "i") == {"i": True}, "anonymous grants are not remembered"
