"""One client connection: its subscriptions, limits and the handling of each request frame."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from ..channel_names import is_protected
from ..exceptions import InvalidToken
from ..history import Position
from ..tokens import Grant, token_issued_at, verify_subscription
from .brokers import Broker
from .calls import CallRunner
from .config import ServerConfig
from .feeds import Join
from .flush import FlushQueue
from .hub import Hub
from .logs import HostileWarnings, event
from .presence import Presence
from .protocol import (
    CloseCode,
    ErrorCode,
    ProtocolError,
    Request,
    ack_frame,
    error_frame,
    parse_request,
    pong_frame,
    presence_frame,
    reply_frame,
    revoked_frame,
)
from .ratelimit import TokenBucket
from .revocations import Revocations
from .stats import NodeStats

__all__ = ["Connection", "Transport"]

logger = logging.getLogger("rtbridge.server")

#: Queued bytes that make a connection write at once instead of at the end of the turn.
FLUSH_BYTES = 64 * 1024
#: Below this, two queued frames are joined into new bytes; above, they go into a list that
#: later frames are appended to (copying them into a growing buffer per socket cost ~0.3 µs a
#: frame in bursts: the buffers of 1,000 sockets do not stay in the CPU's caches).
_JOIN_BYTES = 1024
#: Bytes handed to the transport before the kernel took the previous write; the rest waits
#: in the connection's backlog as whole frames. It bounds what sits ahead of a close frame,
#: so even a slow reader gets its 4002 close frame right after the frames it was reading.
WRITE_AHEAD = 64 * 1024

#: A presence entry waiting for its member list; events meanwhile are held back.
PresenceEvent = tuple[int, str, dict[str, Any]]


class Transport(Protocol):
    """What a connection needs from the socket under it (see ``transport.py``)."""

    def write_frames(self, frames: Sequence[bytes | bytearray]) -> Awaitable[None] | None:
        """Write complete WebSocket frames, in order (an item may hold several, back to back);
        raise on a closed socket.

        Return an awaitable done once the transport handed everything to the kernel, or
        ``None`` when it did at once.
        """

    def pending_bytes(self) -> int:
        """Return the bytes written but not yet accepted by the kernel."""

    def close_socket(self, code: int, reason: str) -> None:
        """Start the WebSocket closing handshake with ``code`` and ``reason``."""


class Connection:
    """The protocol state of one socket; every method is called on the server's event loop.

    The connection owns its subscriptions (channels, grants, presence snapshots) and tells
    the hub where to route; the hub never edits them.
    """

    __slots__ = (
        "abuse",
        "backlog",
        "backlog_size",
        "broker",
        "call_bucket",
        "calls",
        "channels",
        "closed",
        "config",
        "features",
        "flushes",
        "grants",
        "hostile_warnings",
        "hub",
        "last_activity",
        "pending",
        "pending_size",
        "presence",
        "presence_backlog",
        "presence_versions",
        "remote",
        "revocations",
        "session_key",
        "socket_id",
        "spreader",
        "stats",
        "transport",
        "unsent",
        "user",
        "warned",
        "whisper_bucket",
        "writing",
    )

    def __init__(
        self,
        transport: Transport,
        socket_id: str,
        *,
        hub: Hub,
        broker: Broker,
        presence: Presence,
        revocations: Revocations,
        flushes: FlushQueue,
        stats: NodeStats,
        config: ServerConfig,
        calls: CallRunner | None,
        features: tuple[str, ...],
        hostile_warnings: HostileWarnings,
        remote: str = "",
        session_key: str | None = None,
    ) -> None:
        self.transport = transport
        self.socket_id = socket_id
        self.hub = hub
        self.spreader = hub.spreader
        self.broker = broker
        self.presence = presence
        self.revocations = revocations
        self.flushes = flushes
        self.stats = stats
        self.config = config
        #: Runs router calls in threads (``None``: this node offers no calls).
        self.calls = calls
        #: Optional ops this node serves (see ``app.available_features``).
        self.features = features
        self.remote = remote
        #: The Django session key from the handshake's cookie; calls run as its user.
        self.session_key = session_key
        #: The session's user, loaded (in a worker thread) by the first call.
        self.user: Any = None
        self.channels: set[str] = set()
        #: Protected channel -> the grant of the token it was subscribed with.
        self.grants: dict[str, Grant] = {}
        #: Presence channel -> the version of the member list this client has (None while
        #: it is being fetched), and the events held back meanwhile.
        self.presence_versions: dict[str, int | None] = {}
        self.presence_backlog: dict[str, list[PresenceEvent]] = {}
        # Rate limits, made on first use: most sockets never whisper or call, and an idle
        # connection's memory is what bounds how many one node holds.
        self.whisper_bucket: TokenBucket | None = None
        self.call_bucket: TokenBucket | None = None
        self.last_activity = time.monotonic()
        #: Bad frames in a row; at ``abuse_threshold`` the socket is closed with 4001.
        self.abuse = 0
        self.closed = False
        # Frames queued during this turn of the event loop; the flush queue writes them
        # together at the end of the turn, so a burst of messages costs one socket write.
        # One frame is kept as is, a few joined into one bytes: neither is an object the
        # garbage collector tracks, while a list per message and socket made it walk every
        # object of the node (~70 per socket) every few seconds. Only a socket with more than
        # _JOIN_BYTES queued in one turn (a burst) gets a list.
        self.pending: bytes | list[bytes] | None = None
        self.pending_size = 0
        #: Bytes Tornado had not yet sent when this turn's first frame was queued.
        self.unsent = 0
        #: Batches of whole frames flushed while the transport was still writing (see
        #: WRITE_AHEAD); made when first needed (an empty deque is 760 bytes of every socket).
        self.backlog: deque[bytes] | None = None
        self.backlog_size = 0
        #: The transport's write in progress (done once the kernel took it), if any.
        self.writing: Awaitable[None] | None = None
        #: Whether a hostile frame from this socket was logged at WARNING already.
        self.warned = False
        self.hostile_warnings = hostile_warnings

    def send(self, frame: bytes) -> bool:
        """Queue ``frame`` unless the outbound buffer would pass its limit (then close 4002).

        It goes after every frame of a large fan-out that has not reached this connection
        yet (see ``spread.Spreader``), so frames arrive in the order they were sent.
        """
        spreader = self.spreader
        if spreader.busy:
            spreader.catch_up(self)
        # The rest is queue()'s body, repeated: this is the hot path of every delivery, and
        # a call more per frame cost ~15% of the burst figure.
        if self.closed:
            return False
        pending = self.pending
        if pending is None:
            # Asking Tornado is costly (it was ~45% of the server's CPU at peak when done per
            # frame); once per turn is enough, as its buffer can only shrink meanwhile, so the
            # check stays conservative.
            self.unsent = self.transport.pending_bytes()
        total = self.pending_size + len(frame)
        if total + self.backlog_size + self.unsent > self.config.max_buffer_bytes:
            self._too_slow()
            return False
        self.pending_size = total
        if pending is None:
            self.pending = frame
            self.flushes.schedule(self)
        elif isinstance(pending, list):
            pending.append(frame)
        else:
            self.pending = pending + frame if total < _JOIN_BYTES else [pending, frame]
        if total >= FLUSH_BYTES:
            # Big bursts go to the kernel now rather than wait in the queue; otherwise one
            # burst larger than max_buffer_bytes would look like a slow consumer.
            self.flush()
        return True

    def queue(self, frame: bytes) -> bool:
        """Queue ``frame`` now, ahead of fan-outs still under way (the fan-out's own hand-over)."""
        if self.closed:
            return False
        pending = self.pending
        if pending is None:
            self.unsent = self.transport.pending_bytes()
        total = self.pending_size + len(frame)
        if total + self.backlog_size + self.unsent > self.config.max_buffer_bytes:
            self._too_slow()
            return False
        self.pending_size = total
        if pending is None:
            self.pending = frame
            self.flushes.schedule(self)
        elif isinstance(pending, list):
            pending.append(frame)
        else:
            self.pending = pending + frame if total < _JOIN_BYTES else [pending, frame]
        if total >= FLUSH_BYTES:
            self.flush()
        return True

    def _too_slow(self) -> None:
        self.stats.slow_consumers += 1
        self.close(
            CloseCode.SLOW_CONSUMER,
            f"slow consumer: more than {self.config.max_buffer_bytes} bytes unsent",
        )

    def flush(self) -> None:
        """Write the queued frames in one go (into the backlog while the transport is busy)."""
        pending, size = self.pending, self.pending_size
        self.pending, self.pending_size = None, 0
        if pending is None or self.closed:
            return
        frames = pending if isinstance(pending, bytes) else b"".join(pending)
        self.stats.bytes_out += size
        if self.writing is not None:
            if self.backlog is None:
                self.backlog = deque()
            self.backlog.append(frames)
            self.backlog_size += size
            return
        self._write(frames)

    def _write(self, frames: bytes) -> None:
        try:
            # A tuple of bytes is no work for the garbage collector (it untracks it).
            writing = self.transport.write_frames((frames,))
        except Exception:  # the stream closed under us; on_close will clean up
            self.closed = True
            return
        if writing is not None:
            self.writing = writing
            future = asyncio.ensure_future(writing)
            future.add_done_callback(self._written)

    def _write_now(self, frames: Sequence[bytes]) -> None:
        # Before a close: everything goes to the transport, whatever it holds already.
        try:
            self.transport.write_frames(frames)
        except Exception:
            self.closed = True

    def _written(self, future: asyncio.Future[None]) -> None:
        # The kernel took the previous write: hand it the next WRITE_AHEAD bytes of backlog.
        self.writing = None
        if not future.cancelled() and future.exception() is not None:
            self.closed = True  # the stream closed; on_close cleans up
        backlog = self.backlog
        if self.closed or not backlog:
            return
        # Each backlog item is one flush's batch of whole frames.
        batch = backlog.popleft()
        size = len(batch)
        if backlog and size + len(backlog[0]) <= WRITE_AHEAD:
            batches = [batch]
            while backlog and size + len(backlog[0]) <= WRITE_AHEAD:
                item = backlog.popleft()
                batches.append(item)
                size += len(item)
            batch = b"".join(batches)
        self.backlog_size -= size
        self._write(batch)

    def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` after the queued frames; later sends are dropped."""
        if self.closed:
            return
        logger.debug(
            "rtbridge: closing %s (%s): %d %s",
            self.socket_id,
            self.remote,
            code,
            reason,
            extra=event("socket.closing", socket_id=self.socket_id, code=code, peer=self.remote),
        )
        if code == CloseCode.SLOW_CONSUMER:
            # What the transport holds (at most WRITE_AHEAD bytes of whole frames) goes out,
            # then the close frame; the frames it could not take are dropped.
            self.pending, self.pending_size = None, 0
        else:
            # e.g. the error frame that explains a 4001 goes out first, backlog and all.
            batches = list(self.backlog or ())
            pending = self.pending
            if pending is not None:
                batches.append(pending if isinstance(pending, bytes) else b"".join(pending))
            self.pending, self.pending_size = None, 0
            if batches:
                self._write_now(batches)
        self.backlog = None
        self.backlog_size = 0
        # Leave the hub now: the closing handshake may take seconds (a stalled client never
        # answers), and meanwhile nothing must be routed or buffered for this socket.
        self._leave_hub()
        try:
            self.transport.close_socket(code, reason[:120])
        except Exception:  # already closed: nothing left to tell the client
            logger.debug("rtbridge: %s was already closed", self.socket_id)

    def socket_closed(self) -> None:
        """Note that the socket is gone (its closing handshake finished, or it was cut)."""
        self._leave_hub()
        self.hub.socket_closed()

    def _leave_hub(self) -> None:
        # Later sends are dropped; every subscription ends (presence leaves included).
        self.closed = True
        if self.hub.remove(self):
            for channel in list(self.channels):
                self.unsubscribe(channel)

    # Subscriptions ------------------------------------------------------------------------

    def unsubscribe(self, channel: str) -> None:
        """Leave ``channel`` (a no-op if not subscribed): its grant goes, and on a presence
        channel its entry (in the background), which tells the others ``leave`` when it was
        the member's last connection.
        """
        self.channels.discard(channel)
        grant = self.grants.pop(channel, None)
        self.presence_versions.pop(channel, None)
        self.presence_backlog.pop(channel, None)
        if grant is not None and grant.member is not None:
            self.presence.leave_soon(channel, self.socket_id, grant.member["id"])
        self.hub.unsubscribe(self, channel)

    def revoke(self, channel: str, user_id: str) -> bool:
        """End the subscription to ``channel`` if ``user_id`` holds it; return whether it did."""
        grant = self.grants.get(channel)
        if grant is None or grant.user_id != user_id:
            return False
        self.unsubscribe(channel)
        self.send(revoked_frame(channel))
        return True

    def presence_member(self, channel: str) -> dict[str, Any] | None:
        """Return the member this connection is on presence ``channel`` as, if it is."""
        grant = self.grants.get(channel)
        return grant.member if grant is not None else None

    def presence_event(
        self, channel: str, action: str, member: dict[str, Any], version: int, frame: bytes
    ) -> None:
        """Send a presence change (``frame``) unless this connection's list already has it.

        Skipped on the member's own connections and when ``version`` is not newer than the
        connection's snapshot; held back while the snapshot is still being fetched.
        """
        grant = self.grants.get(channel)
        if grant is None or grant.member is None or grant.member["id"] == member["id"]:
            return
        if channel not in self.presence_versions:
            return
        snapshot = self.presence_versions[channel]
        if snapshot is None:
            self.presence_backlog.setdefault(channel, []).append((version, action, member))
        elif version > snapshot:
            self.send(frame)

    def _presence_ready(self, channel: str, version: int) -> None:
        # The member list (at ``version``) was sent: send the events held back for it.
        self.presence_versions[channel] = version
        for event_version, action, member in self.presence_backlog.pop(channel, ()):
            if event_version > version:
                self.send(presence_frame(channel, action, member))

    async def _enter(self, channel: str, since: Position | None) -> Join:
        # Returns where the subscription starts, once the broker listens to the channel.
        self.channels.add(channel)
        join = await self.hub.subscribe(self, channel, since)
        if self.closed:
            # It closed while waiting for the broker; do not leave it behind as a subscriber.
            self.unsubscribe(channel)
        return join

    def _acknowledge(
        self,
        request: Request,
        channel: str,
        join: Join,
        members: list[dict[str, Any]] | None = None,
    ) -> None:
        # The ack, then (in the same turn) the replay and the live messages that waited.
        self.send(ack_frame(request.id, channel, join.ack, members, join.recovered))
        self.hub.activate(self, channel)

    # Requests -----------------------------------------------------------------------------

    def heartbeat_received(self) -> None:
        """Note a client heartbeat: activity, and a well-formed frame."""
        self.last_activity = time.monotonic()
        self.abuse = 0

    async def handle(self, raw: str | bytes) -> None:
        """Serve one frame from the client; never raises."""
        if self.closed:
            return  # frames that arrive during the closing handshake are ignored
        self.last_activity = time.monotonic()
        try:
            request = parse_request(raw, self.config.max_frame_bytes, self.config.max_json_depth)
            await self._serve(request)
        except ProtocolError as exc:
            self._refuse(exc)
        except Exception:
            # A bug must cost this one request, not the socket or the server.
            logger.exception("rtbridge: error serving a frame from %s", self.socket_id)
            self.send(error_frame(None, ErrorCode.BAD_FRAME, "internal error serving this frame"))
        else:
            self.abuse = 0

    async def _serve(self, request: Request) -> None:
        op = request.op
        if op == "heartbeat":
            return
        if op == "ping":
            self.send(pong_frame(request.id))
            return
        if op == "call":
            await self._call(request)
            return
        channel = request.channel
        assert channel is not None
        if op == "unsubscribe":
            self.unsubscribe(channel)
            self.send(ack_frame(request.id, channel))
            return
        if op == "whisper":
            await self._whisper(request, channel)
            return
        await self._subscribe(request, channel)

    async def _subscribe(self, request: Request, channel: str) -> None:
        grant = await self._check_token(request, channel) if is_protected(channel) else None
        if channel not in self.channels and len(self.channels) >= self.config.max_subscriptions:
            raise ProtocolError(
                ErrorCode.TOO_MANY_SUBSCRIPTIONS,
                f"this connection already has {len(self.channels)} subscriptions, the limit; "
                "unsubscribe from one first",
                request.id,
            )
        if grant is None:
            join = await self._enter(channel, request.since)
            if channel in self.channels:
                self._acknowledge(request, channel, join)
                self._log_subscribed(channel)
            return
        member = grant.member
        previous_grant = self.grants.get(channel)
        again = previous_grant is not None
        if (
            previous_grant is not None
            and previous_grant.member is not None
            and (member is None or previous_grant.member["id"] != member["id"])
        ):
            # Subscribed again as someone else (the session changed): the old entry goes.
            self.presence.leave_soon(channel, self.socket_id, previous_grant.member["id"])
        self.grants[channel] = grant
        if member is not None and not again:
            # Events until the member list arrives are held back, then filtered by version.
            self.presence_versions[channel] = None
        join = await self._enter(channel, request.since)
        members = None
        if member is not None and self.grants.get(channel) is grant:
            version, members = await self.presence.join(channel, self.socket_id, member)
            if self.grants.get(channel) is not grant:
                # Revoked or closed while joining: the leave may have run before the join,
                # so make sure the entry goes.
                self.presence.leave_soon(channel, self.socket_id, member["id"])
        if self.grants.get(channel) is grant and self._revoked(grant, request.auth):
            # A revocation this node saw after the check above but before the subscription
            # was in place (hub.revoke could not find it yet).
            self.unsubscribe(channel)
        if self.grants.get(channel) is not grant:
            # Revoked while subscribing (the client may also get a "revoked" frame).
            raise ProtocolError(
                ErrorCode.FORBIDDEN,
                f"access to {channel!r} was revoked while subscribing",
                request.id,
                "revoked",
            )
        self._acknowledge(request, channel, join, members)
        self._log_subscribed(channel)
        if members is not None:
            previous = self.presence_versions.get(channel)
            self._presence_ready(channel, max(version, previous or 0))

    def _log_subscribed(self, channel: str) -> None:
        logger.debug(
            "rtbridge: %s subscribed to %s",
            self.socket_id,
            channel,
            extra=event(
                "socket.subscribed", socket_id=self.socket_id, channel=channel, peer=self.remote
            ),
        )

    async def _check_token(self, request: Request, channel: str) -> Grant:
        """Verify the subscription token (no database hit) and the revocation list."""
        if "auth" not in self.features:
            raise ProtocolError(
                ErrorCode.FORBIDDEN,
                f"channel {channel!r} is protected, and this server runs without Django "
                "settings (SECRET_KEY), so it cannot check tokens; run it with the project's "
                "settings",
                request.id,
            )
        try:
            grant = verify_subscription(request.auth, self.socket_id, channel)
        except InvalidToken as exc:
            raise ProtocolError(ErrorCode.FORBIDDEN, str(exc), request.id, exc.code) from None
        if grant.user_id is not None:
            assert request.auth is not None
            revoked_at = await self.revocations.latest(grant.user_id, channel)
            # Timestamps are whole seconds: a token signed in the second of the revocation
            # is refused too (the client asks the auth endpoint again, which decides anew).
            if revoked_at is not None and token_issued_at(request.auth) <= revoked_at:
                raise ProtocolError(
                    ErrorCode.FORBIDDEN,
                    f"access to {channel!r} was revoked after this token was issued; ask the "
                    "auth endpoint for a new one",
                    request.id,
                    "revoked",
                )
        return grant

    def _revoked(self, grant: Grant, token: str | None) -> bool:
        if grant.user_id is None or token is None:
            return False
        revoked_at = self.revocations.seen(grant.user_id, grant.channel)
        return revoked_at is not None and token_issued_at(token) <= revoked_at

    async def _whisper(self, request: Request, channel: str) -> None:
        grant = self.grants.get(channel)
        if grant is None or not is_protected(channel):
            raise ProtocolError(
                ErrorCode.FORBIDDEN,
                f"whispers are allowed only on private- and presence- channels this "
                f"connection is subscribed to; {channel!r} is not one",
                request.id,
            )
        if self.whisper_bucket is None:
            self.whisper_bucket = TokenBucket(self.config.whisper_rate)
        if not self.whisper_bucket.take():
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"more than {self.config.whisper_rate} whispers per second; slow down",
                request.id,
                "rate_limited",
            )
        assert request.event is not None and request.data_json is not None
        await self.broker.whisper(
            channel, request.event, request.data_json.encode("utf-8"), grant.user_id, self.socket_id
        )
        self.send(ack_frame(request.id, channel))

    async def _call(self, request: Request) -> None:
        calls = self.calls
        if calls is None:
            raise ProtocolError(
                ErrorCode.UNKNOWN_OP,
                "this server offers no 'call' (see the welcome's features): it runs without "
                "a Django project",
                request.id,
            )
        if self.call_bucket is None:
            self.call_bucket = TokenBucket(self.config.call_rate)
        if not self.call_bucket.take():
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"more than {self.config.call_rate} calls per second; slow down",
                request.id,
                "rate_limited",
            )
        assert request.route is not None and request.verb is not None
        self.stats.calls += 1
        self.user, status, body = await calls.run(
            self.user,
            self.session_key,
            request.route,
            request.verb,
            request.args or {},
            self.socket_id,
        )
        self.send(reply_frame(request.id, status, body))

    def _refuse(self, exc: ProtocolError) -> None:
        self.stats.errors += 1
        self.abuse += 1
        if exc.hostile and not self.warned:
            # Once per connection (and within the node's budget): a hostile client must not
            # be able to buy a log line per frame.
            self.warned = True
            self.hostile_warnings.warn(
                f"{self.socket_id} ({self.remote}) sent a hostile frame: {exc.reason}; "
                f"answered {exc.code} (logged once per connection)",
                code=exc.code,
                socket_id=self.socket_id,
                peer=self.remote,
            )
        else:
            logger.debug(
                "rtbridge: %s sent a bad frame: %d %s",
                self.socket_id,
                exc.code,
                exc.reason,
                extra=event("frame.refused", socket_id=self.socket_id, code=exc.code),
            )
        self.send(error_frame(exc.request_id, exc.code, exc.reason, exc.detail))
        if self.abuse >= self.config.abuse_threshold:
            self.stats.abusers += 1
            self.close(CloseCode.ABUSE, f"{self.abuse} bad frames in a row")
