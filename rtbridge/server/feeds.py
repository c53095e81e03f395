"""The state of one channel on a node (its feed) and of one subscriber joining it."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from ..history import Position

__all__ = [
    "UNKNOWN",
    "Feed",
    "Held",
    "Join",
    "Pending",
    "ReadBatch",
    "ReplayFrame",
    "Subscriber",
]

#: The position acknowledged when the broker could not say where a channel is (Redis
#: unreachable): offset 0 in an epoch no channel has, so the client's next resume answers
#: ``recovered: false``, and a ``gap`` with the real position follows once the node knows it.
UNKNOWN = Position(0, "unknown")

#: A live message held back while the feed catches up: (offset, epoch, event, payload, exclude).
Held = tuple[int, str, str, bytes, "str | None"]
#: A frame held back for one joining subscriber: (offset, epoch, frame, exclude); offset and
#: epoch are ``None`` for a message without a position.
Pending = tuple["int | None", "str | None", bytes, "str | None"]
#: A replayed message ready to send: (offset, frame, exclude).
ReplayFrame = tuple[int, bytes, "str | None"]


class Subscriber(Protocol):
    """What the hub needs from a connection (``Connection`` provides it)."""

    socket_id: str
    #: Monotonic time of the last frame received (idle sockets are closed).
    last_activity: float

    def send(self, frame: bytes) -> bool:
        """Queue ``frame``; return ``False`` if the connection is (now) closed."""

    def queue(self, frame: bytes) -> bool:
        """Queue ``frame`` now, ahead of fan-outs under way (see ``spread.Receiver``)."""

    def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code``."""

    def revoke(self, channel: str, user_id: str) -> bool:
        """End the subscription to ``channel`` if ``user_id`` holds it; return whether it did."""

    def presence_member(self, channel: str) -> dict[str, Any] | None:
        """Return the member the connection is on presence ``channel`` as, if it is."""

    def presence_event(
        self, channel: str, action: str, member: dict[str, Any], version: int, frame: bytes
    ) -> None:
        """Send the presence change ``frame`` unless the connection's list already has it."""


class Join:
    """One subscribe under way: what its ack says and what it gets before live messages.

    ``floor`` is the position the subscriber is at once its ack and replay are written: live
    messages up to it are not sent again. ``ack`` is the position the ack carries (the
    client's ``since`` when the replay recovers it, else the floor).
    """

    __slots__ = ("ack", "active", "floor", "gaps", "pending", "recovered", "replay", "since")

    def __init__(self, since: Position | None, gaps: int) -> None:
        self.since = since
        #: The feed's gap count when the subscribe began (a gap meanwhile is sent too).
        self.gaps = gaps
        self.floor: Position | None = None
        self.ack: Position | None = None
        self.recovered: bool | None = None
        self.replay: tuple[ReplayFrame, ...] = ()
        #: Live frames that arrived before the ack was written.
        self.pending: list[Pending] = []
        #: Acked, but ahead of what the node delivered: live messages up to ``floor`` skip it.
        self.active = False

    def decide(
        self, floor: Position, ack: Position | None = None, recovered: bool | None = None
    ) -> None:
        """Fix where the subscriber starts."""
        self.floor = floor
        self.ack = ack or floor
        self.recovered = recovered


class ReadBatch:
    """One history read shared by the subscribers resuming in the same epoch at one moment.

    It reads once from the lowest ``since`` of them (``lowest``); each takes the messages
    after its own. ``result`` is the top, whether the read recovered everything after
    ``lowest``, and the frames of those messages, oldest first.
    """

    __slots__ = ("lowest", "result")

    def __init__(self, lowest: int) -> None:
        self.lowest = lowest
        self.result: asyncio.Future[tuple[Position, bool, tuple[ReplayFrame, ...]]] | None = None


class Feed:
    """One channel with local subscribers: its position on this node, and who listens.

    ``offset``/``epoch`` are the last message this node delivered on the channel (or the top
    it read when it started listening); ``epoch`` is ``None`` until the node knows it.
    While ``held`` is a list, live messages wait there: the node is catching up from history
    (it just started listening, lost its broker, or saw a hole in offsets).
    """

    __slots__ = (
        "epoch",
        "epoch_json",
        "gaps",
        "held",
        "joining",
        "json",
        "last_gap",
        "left",
        "name",
        "offline",
        "offset",
        "reads",
        "ready",
        "subscribers",
        "sync_again",
        "syncing",
    )

    def __init__(self, name: str, json: bytes) -> None:
        self.name = name
        self.json = json
        self.subscribers: set[Subscriber] = set()
        self.joining: dict[Subscriber, Join] = {}
        self.offset = 0
        self.epoch: str | None = None
        self.epoch_json = b'""'
        #: The epoch given up for the current one: its late messages are dropped.
        self.left: str | None = None
        self.held: list[Held] | None = []
        #: The broker was lost since the last catch-up (presence events may be missed).
        self.offline = False
        self.ready = asyncio.Event()
        self.syncing = False
        self.sync_again = False
        #: Gaps sent so far, and the position the last one moved to.
        self.gaps = 0
        self.last_gap: Position | None = None
        #: The history read gathering joiners, per epoch of their ``since``.
        self.reads: dict[str, ReadBatch] = {}

    @property
    def position(self) -> Position | None:
        """Return the last position delivered here, or ``None`` while it is not known."""
        return None if self.epoch is None else Position(self.offset, self.epoch)

    def listeners(self) -> tuple[Subscriber, ...]:
        """Return every connection on the channel: subscribed, or joining."""
        return (*self.subscribers, *self.joining)
