"""Presence: who is on each ``presence-`` channel, per user, across every server node.

A member is identified by ``member["id"]`` (the user's id unless the channel's authorizer
said otherwise). Each subscribed connection is one *entry*; a member *joins* when its first
entry on the channel appears (on any node) and *leaves* when its last entry goes. Every
change bumps the channel's presence version, and the event carries it, so a connection
whose member list was taken at version ``v`` ignores events numbered ``<= v`` (no double
join, nothing lost between the snapshot and the first event). See docs/server.md,
"Presence in Redis".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any

from ..redis_target import ClusterRedis, RedisTarget
from ..redis_wire import (
    LUA_PUBLISH_PRESENCE,
    channel_key,
    entry_field,
    presence_key,
    presence_nodes_key,
)
from .events import PresenceEvents
from .redis_client import open_client

__all__ = ["MemoryPresence", "Presence", "RedisPresence", "run_refresh"]

logger = logging.getLogger("rtbridge.server")

#: Presence channels swept per Redis pipeline (see ``RedisPresence.refresh``).
SWEEP_BATCH = 100

#: (version, members) as a join returns them.
Snapshot = tuple[int, list[dict[str, Any]]]


def _sorted(members: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(members, key=lambda member: member["id"])


class Presence:
    """Where presence entries live; changes go to ``events.presence_event`` on every node."""

    #: Seconds between two :meth:`refresh` calls, or ``None`` when nothing needs refreshing.
    refresh_interval: float | None = None

    def __init__(self, events: PresenceEvents) -> None:
        self.events = events
        # Leaves in flight (started by leave_soon); kept so shutdown can wait for them.
        self._leaving: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Prepare (called once the broker runs)."""

    async def stop(self) -> None:
        """Forget this node's entries (called while the node stops)."""

    async def join(self, channel: str, socket_id: str, member: dict[str, Any]) -> Snapshot:
        """Add an entry; return the channel's version and members (this one included)."""
        raise NotImplementedError

    async def leave(self, channel: str, socket_id: str, member_id: str) -> None:
        """Remove an entry (a no-op when it is not there)."""
        raise NotImplementedError

    def leave_soon(self, channel: str, socket_id: str, member_id: str) -> None:
        """Remove an entry in the background, logging a failure; :meth:`drain` waits for it."""
        task = asyncio.ensure_future(_logged(self.leave(channel, socket_id, member_id)))
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    async def drain(self, timeout: float = 3.0) -> None:
        """Wait up to ``timeout`` for the leaves started by :meth:`leave_soon`."""
        if self._leaving:
            await asyncio.wait(set(self._leaving), timeout=timeout)

    async def refresh(self) -> None:
        """Keep this node's entries alive and drop the entries of dead nodes."""

    def begin_restore(self) -> Awaitable[None] | None:
        """Start adding this node's entries again after the broker reconnected.

        Returns what to wait for before telling clients (``None``: nothing to restore).
        """
        return None


class MemoryPresence(Presence):
    """Presence of one node (the in-memory broker): plain dicts, events sent at once."""

    def __init__(self, events: PresenceEvents) -> None:
        super().__init__(events)
        self._entries: dict[str, dict[str, dict[str, Any]]] = {}
        self._versions: dict[str, int] = {}

    def _emit(self, channel: str, action: str, member: dict[str, Any]) -> int:
        version = self._versions.get(channel, 0) + 1
        self._versions[channel] = version
        self.events.presence_event(channel, action, member, version)
        return version

    async def join(self, channel: str, socket_id: str, member: dict[str, Any]) -> Snapshot:
        """Add an entry; emit ``join`` when it is the member's first on the channel."""
        entries = self._entries.setdefault(channel, {})
        first = all(m["id"] != member["id"] for m in entries.values())
        entries[entry_field(socket_id, member["id"])] = member
        if first:
            self._emit(channel, "join", member)
        members = {m["id"]: m for m in entries.values()}
        return self._versions.get(channel, 0), _sorted(members.values())

    async def leave(self, channel: str, socket_id: str, member_id: str) -> None:
        """Remove an entry; emit ``leave`` when it was the member's last on the channel."""
        entries = self._entries.get(channel)
        if not entries:
            return
        member = entries.pop(entry_field(socket_id, member_id), None)
        if member is None:
            return
        if all(m["id"] != member_id for m in entries.values()):
            self._emit(channel, "leave", member)
        if not entries:
            del self._entries[channel]
            self._versions.pop(channel, None)


# Redis ---------------------------------------------------------------------------------------

# Shared by the scripts: the Redis clock in ms, the liveness of nodes on a channel, and the
# purge of entries whose node is dead there (its score in the channel's nodes sorted set is
# missing or past). Everything a script does is atomic, so two nodes never both decide
# "first entry" or "last entry", and the events it publishes are ordered with the changes
# they describe. Every key is the channel's (one Redis Cluster slot).
_LUA_COMMON = (
    LUA_PUBLISH_PRESENCE
    + """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Versions never go back, even when Redis lost the hash (a restart without persistence):
-- a change gets max(last + 1, now in ms), so clients' snapshots stay comparable.
local function bump(hash, now)
  local version = math.max(tonumber(redis.call('HGET', hash, '#v') or '0') + 1, now)
  redis.call('HSET', hash, '#v', string.format('%d', version))
  return version
end

-- Push this node's liveness on the channel ttl ahead; return whether it was alive until now.
local function mark_alive(nodes, node, now, ttl, keep)
  local score = redis.call('ZSCORE', nodes, node)
  local was_alive = score ~= false and tonumber(score) > now
  redis.call('ZREMRANGEBYSCORE', nodes, '-inf', now)
  redis.call('ZADD', nodes, now + ttl, node)
  redis.call('PEXPIRE', nodes, keep)
  return was_alive
end

local function purge(hash, nodes, now, command, target, channel)
  local all = redis.call('HGETALL', hash)
  local alive, live, dead = {}, {}, {}
  local version = 0
  for i = 1, #all, 2 do
    local field, value = all[i], all[i + 1]
    if field == '#v' then
      version = tonumber(value)
    else
      local node = string.match(field, '^([^.|]+)')
      local ok = alive[node]
      if ok == nil then
        local score = redis.call('ZSCORE', nodes, node)
        ok = score ~= false and tonumber(score) > now
        alive[node] = ok
      end
      local member_id = string.sub(field, string.find(field, '|', 1, true) + 1)
      if ok then
        live[member_id] = value
      else
        redis.call('HDEL', hash, field)
        dead[member_id] = value
      end
    end
  end
  for member_id, value in pairs(dead) do
    if live[member_id] == nil then
      version = bump(hash, now)
      publish_presence(command, target, channel, 'leave', version, value)
    end
  end
  return version, live
end
"""
)

# KEYS: hash, nodes. ARGV: field, member id, member json, publish command, pub/sub target,
# channel, keep ms (of both keys), node id, node ttl ms. Returns whether the node was alive
# on the channel until now (1/0), the version, then the members.
_JOIN = (
    _LUA_COMMON
    + """
local now = now_ms()
local was_alive = mark_alive(KEYS[2], ARGV[8], now, tonumber(ARGV[9]), ARGV[7])
local version, live = purge(KEYS[1], KEYS[2], now, ARGV[4], ARGV[5], ARGV[6])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[7])
if live[ARGV[2]] == nil then
  version = bump(KEYS[1], now)
  publish_presence(ARGV[4], ARGV[5], ARGV[6], 'join', version, ARGV[3])
  live[ARGV[2]] = ARGV[3]
end
local out = {was_alive and 1 or 0, string.format('%d', version)}
for _, value in pairs(live) do
  out[#out + 1] = value
end
return out
"""
)

# KEYS: hash, nodes. ARGV: field, member id, publish command, pub/sub target, channel.
_LEAVE = (
    _LUA_COMMON
    + """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
local now = now_ms()
local version, live = purge(KEYS[1], KEYS[2], now, ARGV[3], ARGV[4], ARGV[5])
if live[ARGV[2]] == nil then
  publish_presence(ARGV[3], ARGV[4], ARGV[5], 'leave', bump(KEYS[1], now), value)
end
return 1
"""
)

# KEYS: hash, nodes. ARGV: publish command, pub/sub target, channel, keep ms, node id, node
# ttl ms. Returns 1 when this node was alive on the channel until now (0: its entries may
# have been purged by others, so it adds them again).
_SWEEP = (
    _LUA_COMMON
    + """
local now = now_ms()
local was_alive = mark_alive(KEYS[2], ARGV[5], now, tonumber(ARGV[6]), ARGV[4])
purge(KEYS[1], KEYS[2], now, ARGV[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if was_alive then
  return 1
end
return 0
"""
)

#: Sweeps sent at once on Redis Cluster (no pipeline there: each goes to its channel's shard).
_CLUSTER_SWEEPS_AT_ONCE = 32


class RedisPresence(Presence):
    """Presence kept in Redis, shared by every node on the same Redis and prefix.

    Layout (``P`` is the prefix, e.g. ``rtbridge:``; keys built by ``rtbridge.redis_wire``,
    all of one channel in its Redis Cluster slot):

    * ``P presence:{<channel>}`` — a hash of ``<socket id>|<member id>`` → member JSON, one
      field per subscribed connection, plus ``#v``, the channel's presence version.
    * ``P presence-nodes:{<channel>}`` — a sorted set of the ids of the nodes with entries
      on the channel, scored by the time (Redis clock, ms) until which each is alive; every
      node pushes its own score ``ttl`` ahead on each of its presence channels every
      ``ttl / 3`` seconds (the sweep) and on each join.
    * Events are published by the scripts on the channel's own pub/sub channel
      (``SPUBLISH`` on Redis Cluster) as ``rtc1\\n{"t": "presence", ...}``, so they reach
      the nodes with subscribers on it.

    An entry whose node is not alive is dropped (with a ``leave`` when it was the member's
    last) by the next join, leave or sweep of that channel; every node sweeps its own
    presence channels every ``ttl / 3`` seconds, so a dead node's members leave within
    ``ttl + ttl / 3`` (20 s with the default 15).
    """

    def __init__(
        self,
        events: PresenceEvents,
        target: RedisTarget,
        prefix: str,
        node_id: str,
        ttl: float,
        *,
        command_timeout: float = 2.0,
        socket_connect_timeout: float = 2.0,
    ) -> None:
        super().__init__(events)
        self.target = target
        self.socket_connect_timeout = socket_connect_timeout
        self.command_timeout = command_timeout
        self.prefix = prefix
        self.node_id = node_id
        self.cluster = isinstance(target, ClusterRedis)
        self.publish_command = "SPUBLISH" if self.cluster else "PUBLISH"
        self.ttl_ms = int(ttl * 1000)
        self.refresh_interval = ttl / 3
        # A channel's keys outlive its last sweep by this much, so abandoned ones go away.
        self.keep_ms = max(4 * self.ttl_ms, 60_000)
        self._client: Any = None
        # Set when a join failed (Redis away): the next refresh adds every entry again.
        self.lapsed = False
        # Channels where a join found the node lapsed: the next refresh adds their entries.
        self._lapsed_channels: set[str] = set()
        # Leaves that failed (Redis away), retried by the next refresh; otherwise the entry
        # of a live node would stay forever.
        self._failed_leaves: set[tuple[str, str, str]] = set()
        # Set while the entries are being added again after a reconnect: joins wait for it,
        # so an ack never lists fewer members than are present.
        self._restoring: asyncio.Future[None] | None = None
        self._restore_task: asyncio.Task[None] | None = None

    def _keys(self, channel: str) -> list[str]:
        return [presence_key(self.prefix, channel), presence_nodes_key(self.prefix, channel)]

    async def start(self) -> None:
        """Make the client (on the server's loop); it connects on the first script."""
        client = self._client = open_client(self.target, self.socket_connect_timeout)
        self._join = client.register_script(_JOIN)
        self._leave = client.register_script(_LEAVE)
        self._sweep = client.register_script(_SWEEP)

    async def stop(self) -> None:
        """Disconnect (the node's entries were removed before this)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _run(self, command: Awaitable[Any]) -> Any:
        # A frozen Redis must not hold a subscribe, or shutdown, forever.
        return await asyncio.wait_for(command, self.command_timeout)

    async def join(self, channel: str, socket_id: str, member: dict[str, Any]) -> Snapshot:
        """Add the entry in one script; it publishes ``join`` if the member is new.

        While this node's entries are being restored after a reconnect, it waits for that
        first, so the member list it returns has every member still present on this node.
        """
        restoring = self._restoring
        if restoring is not None:
            await asyncio.shield(restoring)
        return await self._add_entry(channel, socket_id, member)

    async def _add_entry(self, channel: str, socket_id: str, member: dict[str, Any]) -> Snapshot:
        member_json = json.dumps(member, ensure_ascii=False, separators=(",", ":"))
        field = entry_field(socket_id, member["id"])
        try:
            result = await self._run(
                self._join(
                    keys=self._keys(channel),
                    args=[
                        field,
                        member["id"],
                        member_json,
                        self.publish_command,
                        channel_key(self.prefix, channel),
                        channel,
                        self.keep_ms,
                        self.node_id,
                        self.ttl_ms,
                    ],
                )
            )
        except Exception as exc:
            # The subscription still works; the member list is this member alone until
            # Redis is back and the next refresh adds the entries again.
            logger.warning("rtbridge: presence join on %r failed (will retry): %s", channel, exc)
            self.lapsed = True
            return 0, [member]
        if not int(result[0]) and any(
            entry[0] == channel and entry[1] != socket_id
            for entry in self.events.presence_entries()
        ):
            # The node had lapsed on this channel (others may have purged its other entries)
            # and this join made it alive again, which the next sweep cannot see: that
            # sweep adds them again.
            self._lapsed_channels.add(channel)
        version = int(result[1])
        return version, _sorted(json.loads(value) for value in result[2:])

    async def leave(self, channel: str, socket_id: str, member_id: str) -> None:
        """Remove the entry in one script; it publishes ``leave`` if it was the last."""
        try:
            await self._run(
                self._leave(
                    keys=self._keys(channel),
                    args=[
                        entry_field(socket_id, member_id),
                        member_id,
                        self.publish_command,
                        channel_key(self.prefix, channel),
                        channel,
                    ],
                )
            )
        except Exception:
            self._failed_leaves.add((channel, socket_id, member_id))
            raise

    async def refresh(self) -> None:
        """Sweep this node's presence channels: keep it alive there, drop dead nodes' entries.

        On a channel where the node had been given up for dead (Redis lost its data, or the
        node could not reach it for longer than the ttl), others may have removed its
        entries: they are added again, with ``join`` events where needed.
        """
        if self.lapsed:
            self.lapsed = False
            await self._rejoin(None)
        for leave in list(self._failed_leaves):
            self._failed_leaves.discard(leave)
            await self.leave(*leave)
        channels = self.events.presence_channels()
        if not channels:
            return
        alive = await self._sweep_all(channels)
        lapsed = {channel for channel, ok in zip(channels, alive, strict=True) if not ok}
        lapsed |= self._lapsed_channels
        self._lapsed_channels = set()
        if lapsed:
            await self._rejoin(lapsed)

    async def _sweep_all(self, channels: list[str]) -> list[bool]:
        def sweep(channel: str, client: Any = None) -> Awaitable[Any]:
            return self._sweep(
                keys=self._keys(channel),
                args=[
                    self.publish_command,
                    channel_key(self.prefix, channel),
                    channel,
                    self.keep_ms,
                    self.node_id,
                    self.ttl_ms,
                ],
                client=client,
            )

        if self.cluster:
            # Each channel's sweep goes to its own shard; a few at a time.
            results: list[Any] = []
            for start in range(0, len(channels), _CLUSTER_SWEEPS_AT_ONCE):
                chunk = channels[start : start + _CLUSTER_SWEEPS_AT_ONCE]
                results += await self._run(asyncio.gather(*(sweep(c) for c in chunk)))
            return [bool(result) for result in results]
        # In pipelines of SWEEP_BATCH channels: queueing one costs tens of µs of Python, and
        # each round trip lets the loop serve sockets, so thousands of presence channels never
        # hold it for long.
        alive: list[bool] = []
        for start in range(0, len(channels), SWEEP_BATCH):
            pipe = self._client.pipeline(transaction=False)
            for channel in channels[start : start + SWEEP_BATCH]:
                # With a pipeline this only queues the EVALSHA (loading the script if needed).
                await sweep(channel, pipe)
            alive += [bool(result) for result in await self._run(pipe.execute())]
        return alive

    async def _rejoin(self, channels: set[str] | None) -> None:
        logger.warning(
            "rtbridge: this node's presence had lapsed on %s; joining its members again",
            "every channel" if channels is None else f"{len(channels)} channel(s)",
        )
        # Each entry is read when reached, so a connection that left meanwhile is skipped.
        for channel, socket_id, member in self.events.presence_entries():
            if channels is None or channel in channels:
                await self._add_entry(channel, socket_id, member)

    def begin_restore(self) -> Awaitable[None] | None:
        """Sweep now and, on each channel where Redis forgot this node, add its entries.

        Called by the broker as it reconnects, before the gap frames that make clients
        subscribe again; joins meanwhile wait, so no ack lacks a member who never left and
        no present member is reported gone. Waiting for the next refresh instead left the
        member lists short for up to ``presence_ttl / 3`` seconds.
        """
        if self._client is None:
            return None
        if self._restore_task is None or self._restore_task.done():
            self._restoring = asyncio.get_running_loop().create_future()
            self._restore_task = asyncio.create_task(self._restore(self._restoring))
        return asyncio.shield(self._restore_task)

    async def _restore(self, restoring: asyncio.Future[None]) -> None:
        try:
            # The broker saw its connection drop: this client's pooled connections to the
            # same Redis are as dead (a restarted Redis closed them), and the first command
            # on each would fail. Start afresh. (A Cluster client has no single pool: it
            # drops a failed node's connections itself.)
            pool = getattr(self._client, "connection_pool", None)
            if pool is not None:
                with contextlib.suppress(Exception):
                    await pool.disconnect()
            channels = self.events.presence_channels()
            alive = await self._sweep_all(channels) if channels else []
            lapsed: set[str] | None = {
                channel for channel, ok in zip(channels, alive, strict=True) if not ok
            }
            if self.lapsed:
                self.lapsed, lapsed = False, None  # a join failed: every entry again
            if lapsed is None or lapsed:
                await self._rejoin(lapsed)
        except Exception as exc:  # the next refresh tries again
            self.lapsed = True
            logger.warning("rtbridge: could not restore presence after reconnecting: %s", exc)
        finally:
            self._restoring = None
            restoring.set_result(None)


async def run_refresh(presence: Presence) -> None:
    """Refresh ``presence`` every ``presence.refresh_interval`` seconds until cancelled."""
    interval = presence.refresh_interval
    if interval is None:
        return
    while True:
        try:
            await presence.refresh()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("rtbridge: presence refresh failed (will retry): %s", exc)
        await asyncio.sleep(interval)


async def _logged(coroutine: Coroutine[Any, Any, Any]) -> None:
    try:
        await coroutine
    except Exception as exc:
        logger.warning("rtbridge: background presence update failed: %s", exc)
