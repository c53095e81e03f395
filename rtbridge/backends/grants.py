"""``GrantLedger``: the protected channels granted to one connection, for one-token transports."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

from django.core.cache import cache

__all__ = ["GrantLedger"]


class GrantLedger:
    """Remember the protected channels granted to one connection, for tokens that cover them all.

    PubNub and the Firebase client hold one token per connection: each new token replaces
    the last, so a token must name every protected channel the connection was granted, not
    only the newest. Entries live in Django's default cache (shared by every Django process
    when the cache is), keyed by the user *and* the connection, so nobody can collect another
    user's grants by reusing their socket id; an entry is dropped ``ttl`` seconds after its
    channel was authorized, so a newer token never carries a grant older than one token
    lifetime.
    """

    def __init__(self, namespace: str, ttl: float, *, limit: int = 50) -> None:
        self.namespace = namespace
        self.ttl = ttl
        #: Most channels one token names; the oldest grants are dropped beyond it.
        self.limit = limit
        # Concurrent auth requests of one page in one process must not lose each other's entry.
        self._lock = threading.Lock()

    def _key(self, user_id: str | None, socket_id: str) -> str:
        who = f"{user_id or ''}\x00{socket_id}".encode()
        return f"rtbridge:grants:{self.namespace}:{hashlib.sha256(who).hexdigest()}"

    def add(
        self, user_id: str | None, socket_id: str, channel: str, value: Any = True
    ) -> dict[str, Any]:
        """Record ``channel`` (with ``value``) for the connection; return every live grant of it.

        The result maps channel → value, oldest grant first, newest last, at most ``limit``.
        Anonymous grants (``user_id`` None) are not remembered: a page's id is visible to other
        members (PubNub presence lists it), and nothing else would tell two anonymous users
        apart, so an anonymous page's token names only the channel it just asked for.
        """
        if user_id is None:
            return {channel: value}
        key = self._key(user_id, socket_id)
        now = time.time()
        with self._lock:
            stored = cache.get(key)
            entries: dict[str, list[Any]] = stored if isinstance(stored, dict) else {}
            entries = {
                name: entry
                for name, entry in entries.items()
                if isinstance(entry, list) and len(entry) == 2 and entry[0] > now - self.ttl
            }
            entries.pop(channel, None)
            entries[channel] = [now, value]
            while len(entries) > self.limit:
                entries.pop(next(iter(entries)))
            cache.set(key, entries, timeout=max(1, int(self.ttl)))
        return {name: entry[1] for name, entry in entries.items()}
