"""Message positions and the history store interface: the hosted backends' continuity core."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.module_loading import import_string

from . import conf
from .exceptions import ImproperlyConfigured, InvalidPosition
from .messages import Message

__all__ = [
    "EPOCH_LENGTH",
    "MAX_OFFSET",
    "Entry",
    "HistoryStore",
    "Position",
    "Positions",
    "Replay",
    "load_store",
    "new_epoch",
    "parse_since",
    "replay_from",
]

#: Characters of an epoch made by :func:`new_epoch` (12 url-safe characters, 72 random bits).
EPOCH_LENGTH = 12
#: The largest offset (a signed 64-bit integer, as the database and Redis store it).
MAX_OFFSET = 2**63 - 1
# What a client may send back as an epoch: any store's epochs, not only ours.
_EPOCH_RE = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def new_epoch() -> str:
    """Return a fresh random epoch: 12 url-safe characters."""
    return secrets.token_urlsafe(9)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a message stands on one channel: its ``offset`` and the channel's ``epoch``."""

    offset: int
    epoch: str

    def as_json(self) -> dict[str, Any]:
        """Return ``{"offset", "epoch"}``."""
        return {"offset": self.offset, "epoch": self.epoch}


#: The positions of a batch: for each message (same order), its channel → position.
Positions = list[dict[str, Position]]


@dataclass(frozen=True, slots=True)
class Entry:
    """One message kept in a channel's history; ``payload`` is the JSON text of its data."""

    offset: int
    event: str
    payload: str
    exclude: str | None = None

    def as_json(self) -> dict[str, Any]:
        """Return the history endpoint's form: ``{"offset", "event", "data", "exclude"}``."""
        return {
            "offset": self.offset,
            "event": self.event,
            "data": json.loads(self.payload),
            "exclude": self.exclude,
        }


@dataclass(frozen=True, slots=True)
class Replay:
    """The answer to a resume: what a client that saw ``since`` missed on ``channel``.

    ``recovered`` is None when no position was given (the answer is then only the channel's
    top); True when ``messages`` are every message after it, in order; False when they cannot
    be (the epoch changed, or history was trimmed past it), with ``messages`` empty.
    ``offset``/``epoch`` are the channel's top: the next live message is ``offset + 1``.
    """

    channel: str
    offset: int
    epoch: str
    recovered: bool | None
    messages: tuple[Entry, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """Return the history endpoint's answer (``recovered`` left out without a position)."""
        answer: dict[str, Any] = {"channel": self.channel}
        if self.recovered is not None:
            answer["recovered"] = self.recovered
        answer["offset"] = self.offset
        answer["epoch"] = self.epoch
        answer["messages"] = [entry.as_json() for entry in self.messages]
        return answer


def parse_since(value: object) -> Position | None:
    """Return the position a client sent (``{"offset": int >= 0, "epoch": str}``), or None.

    Raises ``InvalidPosition`` naming what is wrong with a malformed one.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"offset", "epoch"}:
        raise InvalidPosition(
            f"since={value!r} is not a position; send {{'offset': <int >= 0>, 'epoch': <str>}} "
            "as the last message's meta gave them."
        )
    offset, epoch = value["offset"], value["epoch"]
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidPosition(
            f"since.offset={offset!r} is not valid; offsets are integers from 0 to {MAX_OFFSET}."
        )
    if not isinstance(epoch, str) or not _EPOCH_RE.fullmatch(epoch):
        raise InvalidPosition(
            f"since.epoch={epoch!r} is not valid; epochs are 1-64 characters of A-Z a-z 0-9 _ -."
        )
    return Position(offset, epoch)


def replay_from(
    channel: str,
    top: Position,
    since: Position | None,
    read_after: Callable[[int], Sequence[Entry]],
) -> Replay:
    """Decide a resume: every store answers through this, so they all follow the same rules.

    ``read_after(offset)`` returns the kept messages with offsets in ``offset + 1 .. top``,
    oldest first (trimmed ones absent). Raises ``InvalidPosition`` for a position beyond the
    top in the same epoch, which no client can have seen.
    """
    if since is None:
        return Replay(channel, top.offset, top.epoch, None)
    if since.epoch != top.epoch:
        return Replay(channel, top.offset, top.epoch, False)
    if since.offset > top.offset:
        raise InvalidPosition(
            f"since.offset={since.offset} is beyond the last offset of {channel!r} "
            f"({top.offset}) in the same epoch; send a position a message carried."
        )
    if since.offset == top.offset:
        return Replay(channel, top.offset, top.epoch, True)
    entries = tuple(entry for entry in read_after(since.offset) if entry.offset <= top.offset)
    expected = range(since.offset + 1, top.offset + 1)
    if len(entries) != len(expected) or any(
        entry.offset != offset for entry, offset in zip(entries, expected, strict=True)
    ):
        # Trimmed by size or age past the client's position: it must refetch.
        return Replay(channel, top.offset, top.epoch, False)
    return Replay(channel, top.offset, top.epoch, True, entries)


class HistoryStore:
    """Assign positions and keep a bounded history per channel, for the hosted backends.

    Built from :class:`~rtbridge.conf.HistorySettings` (``size`` messages per channel, kept
    ``ttl`` seconds; a channel's position expires after ``ttl`` seconds without a publish and
    comes back with a new epoch). Subclasses implement :meth:`append` and :meth:`replay`.
    Construction does no I/O.
    """

    #: The ``RTBRIDGE_HISTORY["store"]`` alias, for messages.
    alias = "custom"

    def __init__(self, settings: conf.HistorySettings) -> None:
        self.size = settings.size
        self.ttl = settings.ttl

    def append(self, messages: Sequence[Message]) -> Positions:
        """Give every message the next offset on each of its channels, and keep it.

        Atomic per call: either every message of the batch gets its positions (contiguous per
        channel, also against other processes) or the call raises ``PublishError`` and none
        does.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement append(messages)")

    def replay(self, channel: str, since: Position | None) -> Replay:
        """Return what a client at ``since`` missed on ``channel`` (see :func:`replay_from`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement replay(channel, since)")

    def release(self) -> None:
        """Release what the calling thread holds (e.g. its database connection)."""

    def close(self) -> None:
        """Release every connection; the store may be used again afterwards."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} size={self.size} ttl={self.ttl:g}>"


def load_store(settings: conf.HistorySettings | None = None) -> HistoryStore | None:
    """Build the history store ``RTBRIDGE_HISTORY`` names, or return None when history is off."""
    settings = settings or conf.history()
    if not settings.enabled:
        return None
    path = conf.HISTORY_STORES.get(settings.store, settings.store)
    try:
        store_class = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"RTBRIDGE_HISTORY['store']={settings.store!r} cannot be imported ({exc}); give "
            f"{' or '.join(repr(name) for name in conf.HISTORY_STORES)} or the dotted path of "
            "a HistoryStore subclass."
        ) from exc
    if not (isinstance(store_class, type) and issubclass(store_class, HistoryStore)):
        raise ImproperlyConfigured(
            f"RTBRIDGE_HISTORY['store']={settings.store!r} is not a subclass of "
            "rtbridge.history.HistoryStore."
        )
    store: HistoryStore = store_class(settings)
    return store
