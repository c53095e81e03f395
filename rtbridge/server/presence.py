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

from ..redis_wire import (
    LUA_PUBLISH_PRESENCE,
    control_channel,
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

# Shared by the scripts: the Redis clock in ms, and the purge of entries whose node is dead
# (its score in the nodes sorted set is missing or past). Everything a script does is atomic,
# so two nodes never both decide "first entry" or "last entry", and the events it PUBLISHes
# are ordered with the changes they describe.
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


local function purge(hash, nodes, now, control, channel)
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
      publish_presence(control, channel, 'leave', version, value)
    end
  end
  return version, live
end
"""
)

# KEYS: hash, nodes. ARGV: field, member id, member json, control channel, channel, hash ttl ms.
_JOIN = (
    _LUA_COMMON
    + """
local now = now_ms()
local version, live = purge(KEYS[1], KEYS[2], now, ARGV[4], ARGV[5])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
if live[ARGV[2]] == nil then
  version = bump(KEYS[1], now)
  publish_presence(ARGV[4], ARGV[5], 'join', version, ARGV[3])
  live[ARGV[2]] = ARGV[3]
end
local out = {string.format('%d', version)}
for _, value in pairs(live) do
  out[#out + 1] = value
end
return out
"""
)

# KEYS: hash, nodes. ARGV: field, member id, control channel, channel.
_LEAVE = (
    _LUA_COMMON
    + """
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
local now = now_ms()
local version, live = purge(KEYS[1], KEYS[2], now, ARGV[3], ARGV[4])
if live[ARGV[2]] == nil then
  publish_presence(ARGV[3], ARGV[4], 'leave', bump(KEYS[1], now), value)
end
return 1
"""
)

# KEYS: hash, nodes. ARGV: control channel, channel, hash ttl ms.
_SWEEP = (
    _LUA_COMMON
    + """
purge(KEYS[1], KEYS[2], now_ms(), ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
)

# KEYS: nodes. ARGV: node id, ttl ms. Returns 1 when the node was alive until now.
_HEARTBEAT = (
    _LUA_COMMON
    + """
local now = now_ms()
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
local was_alive = score ~= false and tonumber(score) > now
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if was_alive then
  return 1
end
return 0
"""
)

# KEYS: nodes. ARGV: node id.
_FORGET_NODE = "redis.call('ZREM', KEYS[1], ARGV[1]) return 1"


class RedisPresence(Presence):
    """Presence kept in Redis, shared by every node on the same Redis and prefix.

    Layout (``P`` is the prefix, e.g. ``rtbridge:``; keys built by ``rtbridge.redis_wire``):

    * ``P presence:<channel>`` — a hash of ``<socket id>|<member id>`` → member JSON, one
      field per subscribed connection, plus ``#v``, the channel's presence version.
    * ``P presence-nodes`` — a sorted set of live node ids scored by the time (Redis clock,
      ms) until which each is alive; every node pushes its own score ``ttl`` ahead every
      ``ttl / 3`` seconds.
    * Events are PUBLISHed by the scripts on ``P!node`` as ``rtc1\\n{"t": "presence", ...}``.

    An entry whose node is not alive is dropped (with a ``leave`` when it was the member's
    last) by the next join, leave or sweep of that channel; every node sweeps its own
    presence channels every ``ttl / 3`` seconds, so a dead node's members leave within
    ``ttl + ttl / 3`` (20 s with the default 15).
    """

    def __init__(
        self,
        events: PresenceEvents,
        url: str,
        prefix: str,
        node_id: str,
        ttl: float,
        *,
        command_timeout: float = 2.0,
        socket_connect_timeout: float = 2.0,
    ) -> None:
        super().__init__(events)
        self.url = url
        self.socket_connect_timeout = socket_connect_timeout
        self.command_timeout = command_timeout
        self.prefix = prefix
        self.node_id = node_id
        self.control = control_channel(prefix)
        self.ttl_ms = int(ttl * 1000)
        self.refresh_interval = ttl / 3
        # A channel hash outlives its last sweep by this much, so abandoned hashes go away.
        self.hash_ttl_ms = max(4 * self.ttl_ms, 60_000)
        self.nodes_key = presence_nodes_key(prefix)
        self._client: Any = None
        # Set when a join failed (Redis away): the next refresh adds every entry again.
        self.lapsed = False
        # Leaves that failed (Redis away), retried by the next refresh; otherwise the entry
        # of a live node would stay forever.
        self._failed_leaves: set[tuple[str, str, str]] = set()
        # Set while the entries are being added again after a reconnect: joins wait for it,
        # so an ack never lists fewer members than are present.
        self._restoring: asyncio.Future[None] | None = None
        self._restore_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect (on the server's loop) and announce this node as alive."""
        client = self._client = open_client(self.url, self.socket_connect_timeout)
        self._join = client.register_script(_JOIN)
        self._leave = client.register_script(_LEAVE)
        self._sweep = client.register_script(_SWEEP)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._forget = client.register_script(_FORGET_NODE)
        await self.heartbeat()

    async def stop(self) -> None:
        """Mark the node dead at once (its entries were removed before this), then disconnect."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await self._run(self._forget(keys=[self.nodes_key], args=[self.node_id]))
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def heartbeat(self) -> bool:
        """Push this node's liveness ahead; return whether it was still alive until now."""
        beat = self._heartbeat(keys=[self.nodes_key], args=[self.node_id, self.ttl_ms])
        return bool(await self._run(beat))

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
                    keys=[presence_key(self.prefix, channel), self.nodes_key],
                    args=[
                        field,
                        member["id"],
                        member_json,
                        self.control,
                        channel,
                        self.hash_ttl_ms,
                    ],
                )
            )
        except Exception as exc:
            # The subscription still works; the member list is this member alone until
            # Redis is back and the next refresh adds the entries again.
            logger.warning("rtbridge: presence join on %r failed (will retry): %s", channel, exc)
            self.lapsed = True
            return 0, [member]
        version = int(result[0])
        return version, _sorted(json.loads(value) for value in result[1:])

    async def leave(self, channel: str, socket_id: str, member_id: str) -> None:
        """Remove the entry in one script; it publishes ``leave`` if it was the last."""
        try:
            await self._run(
                self._leave(
                    keys=[presence_key(self.prefix, channel), self.nodes_key],
                    args=[entry_field(socket_id, member_id), member_id, self.control, channel],
                )
            )
        except Exception:
            self._failed_leaves.add((channel, socket_id, member_id))
            raise

    async def refresh(self) -> None:
        """Heartbeat, then sweep this node's presence channels for dead nodes' entries.

        When the node had been given up for dead (Redis lost its data, or the node could
        not reach it for longer than the ttl), others may have removed its entries: they
        are added again, with ``join`` events where needed.
        """
        channels = self.events.presence_channels()
        alive = await self.heartbeat()
        if not alive or self.lapsed:
            self.lapsed = False
            await self._rejoin()
        for leave in list(self._failed_leaves):
            self._failed_leaves.discard(leave)
            await self.leave(*leave)
        # In pipelines of SWEEP_BATCH channels: queueing one costs tens of µs of Python, and
        # each round trip lets the loop serve sockets, so thousands of presence channels never
        # hold it for long.
        for start in range(0, len(channels), SWEEP_BATCH):
            pipe = self._client.pipeline(transaction=False)
            for channel in channels[start : start + SWEEP_BATCH]:
                # With a pipeline this only queues the EVALSHA (loading the script if needed).
                await self._sweep(
                    keys=[presence_key(self.prefix, channel), self.nodes_key],
                    args=[self.control, channel, self.hash_ttl_ms],
                    client=pipe,
                )
            await self._run(pipe.execute())

    async def _rejoin(self) -> None:
        logger.warning("rtbridge: this node's presence had lapsed; joining its members again")
        # Each entry is read when reached, so a connection that left meanwhile is skipped.
        for channel, socket_id, member in self.events.presence_entries():
            await self._add_entry(channel, socket_id, member)

    def begin_restore(self) -> Awaitable[None] | None:
        """Heartbeat now and, if Redis forgot this node (it restarted empty), add its entries.

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
            # on each would fail. Start afresh.
            with contextlib.suppress(Exception):
                await self._client.connection_pool.disconnect()
            if not await self.heartbeat() or self.lapsed:
                self.lapsed = False
                await self._rejoin()
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
