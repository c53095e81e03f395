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
import json
import logging
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["MemoryPresence", "Presence", "RedisPresence", "entry_field"]

logger = logging.getLogger("rtbridge.server")

#: (version, members) as a join returns them.
Snapshot = tuple[int, list[dict[str, Any]]]


def entry_field(socket_id: str, member_id: str) -> str:
    """Return the hash field of one connection's entry: ``<socket id>|<member id>``.

    Socket ids are ``<node id>.<counter>`` (hex and digits), so the node is the part before
    the first ``.`` and the member id is everything after the first ``|``.
    """
    return f"{socket_id}|{member_id}"


def _sorted(members: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(members, key=lambda member: member["id"])


class Presence:
    """Where presence entries live; events go to ``hub.presence_event`` on every node."""

    hub: Hub | None = None

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

    async def refresh(self, channels: Iterable[str]) -> None:
        """Keep this node's entries alive and drop the entries of dead nodes."""


class MemoryPresence(Presence):
    """Presence of one node (the in-memory broker): plain dicts, events sent at once."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, dict[str, Any]]] = {}
        self._versions: dict[str, int] = {}

    def _emit(self, channel: str, action: str, member: dict[str, Any]) -> int:
        version = self._versions.get(channel, 0) + 1
        self._versions[channel] = version
        if self.hub is not None:
            self.hub.presence_event(channel, action, member, version)
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
_LUA_COMMON = """
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

local function publish(control, channel, action, version, member_json)
  redis.call('PUBLISH', control, 'rtc1\\n{"t":"presence","c":' .. cjson.encode(channel) ..
    ',"a":"' .. action .. '","v":' .. string.format('%d', version) .. ',"m":' ..
    member_json .. '}')
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
      publish(control, channel, 'leave', version, value)
    end
  end
  return version, live
end
"""

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
  publish(ARGV[4], ARGV[5], 'join', version, ARGV[3])
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
  publish(ARGV[3], ARGV[4], 'leave', bump(KEYS[1], now), value)
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

    Layout (``P`` is the prefix, e.g. ``rtbridge:``):

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
        client: Any,
        prefix: str,
        node_id: str,
        control: str,
        ttl: float,
        *,
        command_timeout: float = 2.0,
    ) -> None:
        self.client = client
        self.command_timeout = command_timeout
        self.prefix = prefix
        self.node_id = node_id
        self.control = control
        self.ttl_ms = int(ttl * 1000)
        # A channel hash outlives its last sweep by this much, so abandoned hashes go away.
        self.hash_ttl_ms = max(4 * self.ttl_ms, 60_000)
        self.nodes_key = f"{prefix}presence-nodes"
        self._join = client.register_script(_JOIN)
        self._leave = client.register_script(_LEAVE)
        self._sweep = client.register_script(_SWEEP)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._forget = client.register_script(_FORGET_NODE)
        # Set when a join failed (Redis away): the next refresh adds every entry again.
        self.lapsed = False
        # Leaves that failed (Redis away), retried by the next refresh; otherwise the entry
        # of a live node would stay forever.
        self._failed_leaves: set[tuple[str, str, str]] = set()

    def key(self, channel: str) -> str:
        """Return the Redis key of ``channel``'s entries."""
        return f"{self.prefix}presence:{channel}"

    async def start(self) -> None:
        """Announce this node as alive."""
        await self.heartbeat()

    async def stop(self) -> None:
        """Mark the node dead at once (its entries are removed by the hub before this)."""
        await self._run(self._forget(keys=[self.nodes_key], args=[self.node_id]))

    async def heartbeat(self) -> bool:
        """Push this node's liveness ahead; return whether it was still alive until now."""
        beat = self._heartbeat(keys=[self.nodes_key], args=[self.node_id, self.ttl_ms])
        return bool(await self._run(beat))

    async def _run(self, command: Awaitable[Any]) -> Any:
        # A frozen Redis must not hold a subscribe, or shutdown, forever.
        return await asyncio.wait_for(command, self.command_timeout)

    async def join(self, channel: str, socket_id: str, member: dict[str, Any]) -> Snapshot:
        """Add the entry in one script; it publishes ``join`` if the member is new."""
        member_json = json.dumps(member, ensure_ascii=False, separators=(",", ":"))
        field = entry_field(socket_id, member["id"])
        try:
            result = await self._run(
                self._join(
                    keys=[self.key(channel), self.nodes_key],
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
                    keys=[self.key(channel), self.nodes_key],
                    args=[entry_field(socket_id, member_id), member_id, self.control, channel],
                )
            )
        except Exception:
            self._failed_leaves.add((channel, socket_id, member_id))
            raise

    async def refresh(self, channels: Iterable[str]) -> None:
        """Heartbeat, then sweep this node's presence channels for dead nodes' entries.

        When the node had been given up for dead (Redis lost its data, or the node could
        not reach it for longer than the ttl), others may have removed its entries: they
        are added again, with ``join`` events where needed.
        """
        alive = await self.heartbeat()
        channels = list(channels)
        if (not alive or self.lapsed) and self.hub is not None:
            self.lapsed = False
            await self.hub.rejoin_presence()
        for leave in list(self._failed_leaves):
            self._failed_leaves.discard(leave)
            await self.leave(*leave)
        if channels:
            pipe = self.client.pipeline(transaction=False)
            for channel in channels:
                # With a pipeline this only queues the EVALSHA (loading the script if needed).
                await self._sweep(
                    keys=[self.key(channel), self.nodes_key],
                    args=[self.control, channel, self.hash_ttl_ms],
                    client=pipe,
                )
            await self._run(pipe.execute())


async def run_refresh(presence: Presence, hub: Hub, interval: float) -> None:
    """Refresh ``presence`` every ``interval`` seconds until cancelled."""
    while True:
        try:
            await presence.refresh(hub.presence_channels())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("rtbridge: presence refresh failed (will retry): %s", exc)
        await asyncio.sleep(interval)
