"""Sharded pub/sub on Redis Cluster: one ``SSUBSCRIBE`` connection per shard a node needs.

redis-py's cluster pub/sub polls its per-node connections in turn (a message on the third
shard waits for the first two to time out) and re-subscribes moved channels silently, while
a node must know exactly which channels it could not hear, and for how long, to replay them
from history. So this module keeps its own slot map (``CLUSTER SLOTS``, asked of any node
that answers) and one plain ``redis.asyncio`` pub/sub connection per shard primary that owns
a wanted channel, each read by its own task.

A channel stops being heard when its shard's connection fails (a primary killed, a failover,
a network cut), when Redis unsubscribes it (``sunsubscribe`` without being asked: its slot
moved to another shard, or a failover gave it to a replica), or when Redis answers
``MOVED``. The listener gets :meth:`~ShardListener.shard_lost` for those channels at once;
the slot map is read again (with backoff), each is subscribed on its owner, and once Redis
confirmed the listener gets :meth:`~ShardListener.shard_restored` for them (replay from
history there). A shard connection closes when its last channel goes.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Protocol

from ..redis_target import ClusterRedis, no_retry
from ..redis_wire import key_slot

__all__ = ["ShardListener", "ShardedSubscriptions"]

logger = logging.getLogger("rtbridge.server")

Address = tuple[str, int]


class ShardListener(Protocol):
    """What :class:`ShardedSubscriptions` reports to (the broker)."""

    def shard_message(self, name: bytes, data: bytes) -> None:
        """A message arrived on shard channel ``name``."""

    def shard_lost(self, names: list[bytes]) -> None:
        """These channels are not heard any more (until :meth:`shard_restored`)."""

    def shard_restored(self, names: list[bytes]) -> None:
        """These channels are heard again (Redis confirmed the new ``SSUBSCRIBE``)."""


class SlotMap:
    """Which primary serves each hash slot, as ``CLUSTER SLOTS`` said."""

    def __init__(self, ranges: Iterable[tuple[int, int, Address]] = ()) -> None:
        self._ranges = sorted(ranges)
        self._starts = [start for start, _end, _address in self._ranges]

    def owner(self, name: bytes) -> Address | None:
        """Return the primary serving ``name``'s slot, or ``None`` if no one does."""
        slot = key_slot(name)
        index = bisect.bisect_right(self._starts, slot) - 1
        if index >= 0:
            start, end, address = self._ranges[index]
            if start <= slot <= end:
                return address
        return None

    def __len__(self) -> int:
        return len(self._ranges)


class _Shard:
    """One pub/sub connection to one shard primary, and the channels wanted on it."""

    def __init__(self, owner: ShardedSubscriptions, address: Address) -> None:
        self.owner = owner
        self.address = address
        self.names: set[bytes] = set()
        self.confirmed: set[bytes] = set()
        # Names whose sunsubscribe we asked for (any other one means "moved away").
        self.leaving: set[bytes] = set()
        self.queue: asyncio.Queue[tuple[str, list[bytes]]] = asyncio.Queue()
        # Set once the writer sent the first command (the pub/sub has a connection then).
        self.sent = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.client: Any = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"rtbridge-shard-{self.address[1]}")

    def add(self, names: list[bytes]) -> None:
        fresh = [name for name in names if name not in self.names]
        self.names.update(fresh)
        self.leaving.difference_update(fresh)
        if fresh:
            self.queue.put_nowait(("ssubscribe", fresh))

    def remove(self, names: list[bytes]) -> None:
        gone = [name for name in names if name in self.names]
        self.names.difference_update(gone)
        self.confirmed.difference_update(gone)
        self.leaving.update(gone)
        if gone and self.names:  # the last ones go with the connection, closed next
            self.queue.put_nowait(("sunsubscribe", gone))

    async def stop(self) -> None:
        # The writer also stops on its own when it reaches this, in case a cancellation
        # arrives inside a redis-py command that does not let it through.
        self.queue.put_nowait(("stop", []))
        if self.task is not None:
            self.task.cancel()
            await asyncio.wait([self.task], timeout=2.0)
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.aclose()

    async def _run(self) -> None:
        owner = self.owner
        self.client = owner.open_node_client(self.address)
        pubsub = self.client.pubsub()
        writer: asyncio.Task[None] | None = None
        try:
            writer = asyncio.create_task(self._write(pubsub))
            await self._read(pubsub, writer)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            owner.shard_failed(self, exc)
        finally:
            if writer is not None:
                writer.cancel()
                await asyncio.wait([writer], timeout=1.0)
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _write(self, pubsub: Any) -> None:
        # One writer keeps SSUBSCRIBE/SUNSUBSCRIBE in order. Redis takes several channels in
        # one SSUBSCRIBE only when they share a slot (CROSSSLOT otherwise): one per slot.
        while True:
            op, names = await self.queue.get()
            if op == "stop":
                return
            by_slot: dict[int, list[bytes]] = defaultdict(list)
            for name in names:
                by_slot[key_slot(name)].append(name)
            for group in by_slot.values():
                if op == "ssubscribe":
                    await pubsub.ssubscribe(*group)
                else:
                    await pubsub.sunsubscribe(*group)
                self.sent.set()

    async def _read(self, pubsub: Any, writer: asyncio.Task[None]) -> None:
        interval = self.owner.ping_interval
        # redis-py's pub/sub has no connection before its first command.
        sent = asyncio.ensure_future(self.sent.wait())
        await asyncio.wait([sent, writer], return_when=asyncio.FIRST_COMPLETED)
        sent.cancel()
        awaiting_pong = False
        while True:
            if writer.done():
                writer.result()  # raises what the command raised
                raise ConnectionError("the shard writer stopped")
            item = await pubsub.get_message(timeout=interval)
            if item is None:
                if awaiting_pong:
                    raise ConnectionError(f"no answer to PING within {interval:g}s")
                await pubsub.ping()
                awaiting_pong = True
                continue
            awaiting_pong = False
            kind = item["type"]
            name = item["channel"]
            if kind == "smessage":
                self.owner.listener.shard_message(name, item["data"])
            elif kind == "ssubscribe":
                if name in self.names:
                    self.confirmed.add(name)
                    self.owner.confirmed(name)
            elif kind == "sunsubscribe":
                if name in self.leaving:
                    self.leaving.discard(name)
                elif name in self.names:
                    # Not asked for: the slot moved (resharding) or a failover took it.
                    self.names.discard(name)
                    self.confirmed.discard(name)
                    self.owner.moved([name])


class ShardedSubscriptions:
    """The shard channels a node listens to, each on the connection of the shard that owns it.

    ``subscribe(name)`` returns a future done once Redis confirmed (or once the channel is
    known to be lost: it is then restored, and reported, later). ``connected`` is true while
    every wanted channel is heard.
    """

    def __init__(
        self,
        target: ClusterRedis,
        listener: ShardListener,
        *,
        socket_connect_timeout: float = 2.0,
        ping_interval: float = 15.0,
        reconnect_max_delay: float = 5.0,
    ) -> None:
        self.target = target
        self.listener = listener
        self.socket_connect_timeout = socket_connect_timeout
        self.ping_interval = ping_interval
        self.reconnect_max_delay = max(0.05, reconnect_max_delay)
        self.slots = SlotMap()
        self.known: list[Address] = list(target.startup_nodes)
        self.wanted: set[bytes] = set()
        self.route: dict[bytes, _Shard] = {}
        self.shards: dict[Address, _Shard] = {}
        # Wanted but not heard now; restored by the repair task.
        self.lost: set[bytes] = set()
        self._waiting: dict[bytes, list[asyncio.Future[None]]] = {}
        # Lost names whose new subscription is not confirmed yet: reported when it is.
        self._restoring: set[bytes] = set()
        self._repair: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        # Shards closing (their last channel left); stop() waits for them.
        self._closing: set[asyncio.Future[None]] = set()
        self.refreshes = 0
        self.losses = 0

    # The connections --------------------------------------------------------------------

    def open_node_client(self, address: Address) -> Any:
        """Return a ``redis.asyncio.Redis`` for one node (no retries: failures are reported)."""
        import redis.asyncio

        target = self.target
        return redis.asyncio.Redis(
            host=address[0],
            port=address[1],
            username=target.username,
            password=target.password,
            ssl=target.ssl,
            socket_connect_timeout=self.socket_connect_timeout,
            socket_keepalive=True,
            retry=no_retry(asyncio=True),
        )

    async def refresh(self) -> None:
        """Read the slot map from the first known node that answers (``CLUSTER SLOTS``)."""
        errors = []
        nodes = list(dict.fromkeys(self.known))
        random.shuffle(nodes)
        for address in nodes:
            client = self.open_node_client(address)
            try:
                reply = await asyncio.wait_for(
                    client.execute_command("CLUSTER SLOTS"), self.socket_connect_timeout + 1
                )
            except Exception as exc:
                errors.append(f"{address[0]}:{address[1]}: {exc}")
                continue
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            ranges, seen = _parse_slots(reply)
            self.slots = SlotMap(ranges)
            # Startup nodes first, then every node the cluster named (replicas too).
            self.known = list(dict.fromkeys([*self.target.startup_nodes, *seen]))
            self.refreshes += 1
            self._ready.set()
            return
        raise ConnectionError("no Redis Cluster node answered CLUSTER SLOTS: " + "; ".join(errors))

    async def start(self) -> None:
        """Start the repair task (it reads the slot map first)."""
        self._repair = asyncio.create_task(self._repair_loop(), name="rtbridge-shard-repair")

    async def stop(self) -> None:
        """Close every shard connection."""
        if self._repair is not None:
            self._repair.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._repair
        for shard in list(self.shards.values()):
            await shard.stop()
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=5)
        self.shards.clear()
        self.route.clear()
        self._release_waiting(list(self._waiting))

    @property
    def ready(self) -> bool:
        """Return whether a slot map was read (channels can be placed)."""
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        """Wait until the first slot map was read."""
        await self._ready.wait()

    @property
    def connected(self) -> bool:
        """Return whether every wanted channel is heard (subscribed and confirmed)."""
        return not self.lost and all(
            name in getattr(self.route.get(name), "confirmed", ()) for name in self.wanted
        )

    # Subscriptions ------------------------------------------------------------------------

    def subscribe(self, name: bytes) -> asyncio.Future[None]:
        """Start listening to ``name``; the future is done once Redis confirmed it."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        shard = self.route.get(name)
        if name in self.wanted and (
            name in self.lost or (shard is not None and name in shard.confirmed)
        ):
            future.set_result(None)
            return future
        self.wanted.add(name)
        self._waiting.setdefault(name, []).append(future)
        if shard is None and not self._place([name]):
            self._lose([name], report=False)  # heard once the slot map knows its owner
        return future

    def unsubscribe(self, name: bytes) -> None:
        """Stop listening to ``name`` (the shard connection closes with its last channel)."""
        self.wanted.discard(name)
        self.lost.discard(name)
        self._restoring.discard(name)
        self._release_waiting([name])
        shard = self.route.pop(name, None)
        if shard is not None:
            shard.remove([name])
            if not shard.names:
                self._close(shard)

    def _place(self, names: list[bytes]) -> bool:
        """Route ``names`` to their owners' shards; return False if the map lacks one."""
        by_owner: dict[Address, list[bytes]] = defaultdict(list)
        for name in names:
            address = self.slots.owner(name)
            if address is None:
                return False
            by_owner[address].append(name)
        for address, group in by_owner.items():
            shard = self.shards.get(address)
            if shard is None:
                shard = self.shards[address] = _Shard(self, address)
                shard.start()
            for name in group:
                self.route[name] = shard
            shard.add(group)
        return True

    def _close(self, shard: _Shard) -> None:
        if self.shards.get(shard.address) is shard:
            del self.shards[shard.address]
        task = asyncio.ensure_future(shard.stop())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # Events from the shards ---------------------------------------------------------------

    def confirmed(self, name: bytes) -> None:
        self._release_waiting([name])
        if name in self._restoring:
            self._restoring.discard(name)
            self.listener.shard_restored([name])

    def moved(self, names: list[bytes]) -> None:
        for name in names:
            self.route.pop(name, None)
        self._lose(names)

    def shard_failed(self, shard: _Shard, exc: BaseException) -> None:
        names = sorted(shard.names)
        logger.warning(
            "rtbridge: lost Redis Cluster shard %s:%d (%s: %s); %d channel(s) move on",
            *shard.address,
            type(exc).__name__,
            exc,
            len(names),
        )
        if self.shards.get(shard.address) is shard:
            del self.shards[shard.address]
        for name in names:
            if self.route.get(name) is shard:
                del self.route[name]
        self._lose(names)

    def _lose(self, names: list[bytes], *, report: bool = True) -> None:
        """Mark ``names`` as not heard; ``report``: they were heard (or about to be) before.

        Without ``report`` (a first subscribe before the slot map knows the owner) the
        subscribe keeps waiting for its confirmation: nothing was missed yet. A name lost
        again before it was restored (its new shard failed too) is not reported twice.
        """
        names = [name for name in names if name in self.wanted and name not in self.lost]
        if not names:
            return
        self.lost.update(names)
        if report:
            self.losses += 1
            # A subscribe waiting for its confirmation is answered now: the channel is
            # restored (and reported) later, as after any loss.
            self._release_waiting(names)
            fresh = [name for name in names if name not in self._restoring]
            self._restoring.update(fresh)
            if fresh:
                self.listener.shard_lost(fresh)
        self._wake.set()

    def _release_waiting(self, names: list[bytes]) -> None:
        for name in names:
            for future in self._waiting.pop(name, ()):
                if not future.done():
                    future.set_result(None)

    async def _repair_loop(self) -> None:
        # Waits for losses; then reads the slot map and places the lost channels. While
        # places keep failing (a dead primary still in the map until its replica takes
        # over), each round waits longer: 50 ms doubling up to reconnect_max_delay, back to
        # 50 ms once nothing is being restored.
        delay = 0.05
        have_map = False
        first = True
        while True:
            if not first:
                await self._wake.wait()
                if not self._restoring:
                    delay = 0.05
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.reconnect_max_delay)
            first = False
            self._wake.clear()
            try:
                if not have_map or self.lost:
                    await self.refresh()
                    have_map = True
                lost = sorted(self.lost)
                placeable = [name for name in lost if self.slots.owner(name) is not None]
                self.lost.difference_update(placeable)
                if placeable:
                    self._place(placeable)
                if self.lost:
                    raise ConnectionError(f"no primary serves {len(self.lost)} channel(s) yet")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning(
                    "rtbridge: Redis Cluster slot map not usable yet (%s); trying again", exc
                )
                self._wake.set()


def _parse_slots(reply: Any) -> tuple[list[tuple[int, int, Address]], list[Address]]:
    """Return ``(slot ranges with their primary, every node named)`` from ``CLUSTER SLOTS``."""
    ranges = []
    seen: list[Address] = []
    for entry in reply:
        start, end, primary, *replicas = entry
        addresses = []
        for node in (primary, *replicas):
            host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
            addresses.append((host, int(node[1])))
        ranges.append((int(start), int(end), addresses[0]))
        seen.extend(addresses)
    return ranges, seen
