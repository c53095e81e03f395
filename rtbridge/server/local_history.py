"""Positions and bounded history of the in-memory broker: the ``local`` backend's continuity."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

from ..conf import HistorySettings
from ..exceptions import InvalidPosition
from ..history import Entry, Position, Replay, new_epoch, replay_from

__all__ = ["LocalHistory"]


class _Channel:
    """One channel: its epoch, its last offset and its recent messages."""

    __slots__ = ("entries", "epoch", "offset", "touched")

    def __init__(self, size: int, now: float) -> None:
        # A random epoch per channel, made when the channel is first seen in this process: a
        # restarted process (or a channel forgotten after ``ttl``) can never reuse offsets.
        self.epoch = new_epoch()
        self.offset = 0
        #: (monotonic time it was kept, entry), oldest first.
        self.entries: deque[tuple[float, Entry]] = deque(maxlen=size)
        self.touched = now


class LocalHistory:
    """Give each message the next offset of each of its channels and keep the last ones.

    Used on the server's event loop only (no lock): ``LocalBackend`` hands messages to the
    loop, which positions them in the order it receives them. History holds at most ``size``
    messages per channel, each for ``ttl`` seconds; a channel nobody published to or read for
    ``ttl`` seconds is forgotten, and comes back with a new epoch. With history off, offsets
    are still given but nothing is kept, so every resume answers ``recovered: false``.
    """

    def __init__(
        self, settings: HistorySettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.enabled = settings.enabled
        self.size = settings.size if settings.enabled else 0
        self.ttl = settings.ttl
        self._clock = clock
        self._channels: dict[str, _Channel] = {}

    def _channel(self, name: str, now: float) -> _Channel:
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(self.size, now)
        channel.touched = now
        return channel

    def append(self, name: str, event: str, payload: str, exclude: str | None) -> Position:
        """Return the position of a new message on channel ``name``, keeping it."""
        now = self._clock()
        channel = self._channel(name, now)
        channel.offset += 1
        if self.size:
            self._trim(channel, now)
            channel.entries.append((now, Entry(channel.offset, event, payload, exclude)))
        return Position(channel.offset, channel.epoch)

    def replay(self, name: str, since: Position | None) -> Replay:
        """Return the top of ``name`` and, after ``since``, what it still keeps.

        A position beyond the top in the same epoch answers ``recovered: False``.
        """
        now = self._clock()
        channel = self._channel(name, now)
        self._trim(channel, now)
        top = Position(channel.offset, channel.epoch)
        if since is not None and not self.enabled:
            return Replay(name, top.offset, top.epoch, False)
        entries = channel.entries

        def read_after(offset: int) -> list[Entry]:
            # Offsets in the deque are contiguous: index the first one wanted directly.
            if not entries:
                return []
            first = entries[0][1].offset
            start = max(0, offset + 1 - first)
            return [entries[index][1] for index in range(start, len(entries))]

        try:
            return replay_from(name, top, since, read_after)
        except InvalidPosition:
            return Replay(name, top.offset, top.epoch, False)

    def keep(self, names: Iterable[str]) -> None:
        """Renew the channels ``names`` (somebody listens) and forget idle ones."""
        now = self._clock()
        for name in names:
            channel = self._channels.get(name)
            if channel is not None:
                channel.touched = now
        idle_before = now - self.ttl
        for name in [
            name for name, channel in self._channels.items() if channel.touched < idle_before
        ]:
            del self._channels[name]

    def _trim(self, channel: _Channel, now: float) -> None:
        entries = channel.entries
        oldest = now - self.ttl
        while entries and entries[0][0] < oldest:
            entries.popleft()

    def __len__(self) -> int:
        return len(self._channels)
