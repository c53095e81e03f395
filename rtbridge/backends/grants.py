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
    lifetime. Per user the ledger also lists the user's connections and the tokens issued to
    them, so :meth:`revoke` can take a channel from all of them and name the tokens to cancel.
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

    def _user_key(self, user_id: str) -> str:
        who = hashlib.sha256(user_id.encode()).hexdigest()
        return f"rtbridge:grants:{self.namespace}:user:{who}"

    def _live(self, key: str, now: float) -> dict[str, list[Any]]:
        stored = cache.get(key)
        entries: dict[str, list[Any]] = stored if isinstance(stored, dict) else {}
        return {
            name: entry
            for name, entry in entries.items()
            if isinstance(entry, list) and len(entry) == 2 and entry[0] > now - self.ttl
        }

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
            entries = self._live(key, now)
            entries.pop(channel, None)
            entries[channel] = [now, value]
            while len(entries) > self.limit:
                entries.pop(next(iter(entries)))
            cache.set(key, entries, timeout=max(1, int(self.ttl)))
            self._remember(user_id, "sockets", socket_id, now)
        return {name: entry[1] for name, entry in entries.items()}

    def current(self, user_id: str | None, socket_id: str) -> dict[str, Any]:
        """Return the connection's live grants (channel → value) without adding one."""
        if user_id is None:
            return {}
        entries = self._live(self._key(user_id, socket_id), time.time())
        return {name: entry[1] for name, entry in entries.items()}

    def record_token(self, user_id: str | None, token: str) -> None:
        """Remember a token issued to ``user_id`` for one lifetime, so :meth:`revoke` names it."""
        if user_id is not None:
            with self._lock:
                self._remember(user_id, "tokens", token, time.time())

    def revoke(self, user_id: str, channel: str) -> list[str]:
        """Take ``channel`` from every connection of ``user_id``; return the user's live tokens.

        Tokens issued from now on no longer name the channel (unless it is granted again);
        the caller cancels the returned ones, which may still name it.
        """
        now = time.time()
        with self._lock:
            record = self._user_record(user_id, now)
            for socket_id in record["sockets"]:
                key = self._key(user_id, socket_id)
                entries = self._live(key, now)
                if entries.pop(channel, None) is not None:
                    cache.set(key, entries, timeout=max(1, int(self.ttl)))
            tokens = list(record["tokens"])
            record["tokens"] = {}
            cache.set(self._user_key(user_id), record, timeout=max(1, int(self.ttl)))
        return tokens

    def _user_record(self, user_id: str, now: float) -> dict[str, dict[str, float]]:
        stored = cache.get(self._user_key(user_id))
        record = stored if isinstance(stored, dict) else {}
        return {
            part: {
                item: stamp
                for item, stamp in (record.get(part) or {}).items()
                if isinstance(stamp, float) and stamp > now - self.ttl
            }
            for part in ("sockets", "tokens")
        }

    def _remember(self, user_id: str, part: str, item: str, now: float) -> None:
        # Called with the lock held. Bounded like the grants: the oldest go beyond ``limit``.
        record = self._user_record(user_id, now)
        items = record[part]
        items.pop(item, None)
        items[item] = now
        while len(items) > self.limit:
            items.pop(next(iter(items)))
        cache.set(self._user_key(user_id), record, timeout=max(1, int(self.ttl)))
