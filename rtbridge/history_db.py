"""The ``"database"`` history store: positions and history in two tables of the rtbridge app."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import (
    DatabaseError,
    IntegrityError,
    OperationalError,
    connections,
    router,
    transaction,
)
from django.utils import timezone

from . import conf
from .exceptions import PublishError
from .history import Entry, HistoryStore, Position, Positions, Replay, new_epoch, replay_from
from .messages import Message
from .models import HistoryChannel, HistoryMessage

__all__ = ["DatabaseHistoryStore"]

logger = logging.getLogger("rtbridge.history")

T = TypeVar("T")


class DatabaseHistoryStore(HistoryStore):
    """Keep positions and history with the Django ORM (``rtbridge`` app tables).

    One publish batch is one transaction: it makes sure each channel has its row (an insert
    that ignores existing rows, also the first statement, so SQLite takes its write lock at
    once), locks the rows in channel order with ``select_for_update()`` (PostgreSQL, MySQL,
    Oracle; SQLite serializes writers by itself), takes the next offsets, inserts the
    messages and trims each channel to ``size`` messages and ``ttl`` seconds. Lock conflicts
    and deadlocks roll back and retry. Quiet channels are swept every ``sweep_interval``.

    A batch published inside the caller's own transaction is assigned in a thread of its own,
    committed at once: a rollback of the caller's transaction must not take back positions
    that are already on their way to the vendor.
    """

    alias = "database"
    #: Seconds one batch keeps trying while the database reports lock conflicts, deadlocks
    #: or a lost connection (SQLite's in-memory shared cache reports conflicts at once, without
    #: waiting for the lock, so this is also its wait).
    retry_for = 5.0
    #: Seconds between sweeps of channels quiet for longer than ``ttl`` (and their messages).
    sweep_interval = 60.0

    def __init__(self, settings: conf.HistorySettings) -> None:
        super().__init__(settings)
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._next_sweep = time.monotonic() + min(self.ttl, self.sweep_interval)

    @property
    def using(self) -> str:
        """Return the database alias of the tables (``DATABASE_ROUTERS`` decide, for writes).

        Reads go there too: a replica that lags could make a real position look forged.
        """
        return router.db_for_write(HistoryChannel)

    # Publishing --------------------------------------------------------------------------

    def append(self, messages: Sequence[Message]) -> Positions:
        """Assign and keep positions for ``messages`` in one transaction (see the class)."""
        if not messages:
            return []
        using = self.using
        if connections[using].in_atomic_block:
            positions = self._in_own_thread(
                lambda: self._retrying(lambda: self._assign(messages, using), using)
            )
        else:
            positions = self._retrying(lambda: self._assign(messages, using), using)
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + min(self.ttl, self.sweep_interval)
            self.sweep()
        return positions

    def _retrying(self, work: Callable[[], T], using: str) -> T:
        """Run ``work`` in a transaction of its own, again after a transient failure."""
        deadline = time.monotonic() + self.retry_for
        attempt = 0
        while True:
            attempt += 1
            try:
                with transaction.atomic(using=using):
                    return work()
            except OperationalError as exc:
                # Lock timeouts, deadlocks and serialization failures roll back whole; so does
                # a dropped connection, which the next try opens again.
                if time.monotonic() >= deadline:
                    raise PublishError(
                        f"The history database kept failing for {self.retry_for}s ({attempt} "
                        f"tries): {exc}",
                        retryable=True,
                    ) from exc
                if not connections[using].in_atomic_block:
                    connections[using].close_if_unusable_or_obsolete()
                time.sleep(random.uniform(0.5, 1.0) * min(0.05, 0.002 * 2**attempt))
            except IntegrityError as exc:
                # The (channel, offset) constraint caught two publishers taking one offset:
                # only possible if the database ignores select_for_update().
                raise PublishError(
                    f"The history database refused a duplicate offset: {exc}. The database "
                    "must lock rows with SELECT ... FOR UPDATE (PostgreSQL, MySQL/InnoDB, "
                    "Oracle) or serialize writers (SQLite); or use the 'redis' store.",
                ) from exc
            except DatabaseError as exc:
                raise PublishError(
                    f"The history database refused the batch: {exc}. Did you run "
                    "'manage.py migrate rtbridge'?",
                ) from exc

    def _assign(self, messages: Sequence[Message], using: str) -> Positions:
        now = timezone.now()
        names = sorted({name for message in messages for name in message.channels})
        rows = self._lock_rows(names, using, now)
        connection = connections[using]
        published_at = connection.ops.adapt_datetimefield_value(now)
        positions: Positions = []
        kept: list[tuple[Any, ...]] = []
        for message in messages:
            assigned: dict[str, Position] = {}
            for name in message.channels:
                row = rows[name]
                row.last_offset += 1
                assigned[name] = Position(row.last_offset, row.epoch)
                kept.append(
                    (
                        row.pk,
                        row.last_offset,
                        message.event,
                        message.payload,
                        message.exclude or "",
                        published_at,
                    )
                )
            positions.append(assigned)
        # The messages as one prepared INSERT (the ORM's bulk_create compiles every row).
        quote = connection.ops.quote_name
        columns = ("channel_id", "offset", "event", "payload", "exclude", "published_at")
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {quote(HistoryMessage._meta.db_table)} "
                f"({', '.join(quote(column) for column in columns)}) "
                f"VALUES ({', '.join(['%s'] * len(columns))})",
                kept,
            )
        for row in rows.values():
            row.touched_at = now
        self._save_rows(list(rows.values()), using)
        self._trim(list(rows.values()), using, now)
        return positions

    def _lock_rows(self, names: list[str], using: str, now: datetime) -> dict[str, HistoryChannel]:
        """Return the locked, current rows of ``names`` (created, or renewed when expired)."""
        manager = HistoryChannel.objects.using(using)
        rows: dict[str, HistoryChannel] = {}
        # Twice at most: a sweep may delete a quiet row between the insert and the lock.
        for _ in range(3):
            missing = [name for name in names if name not in rows]
            if not missing:
                break
            manager.bulk_create(
                [
                    HistoryChannel(channel=name, epoch=new_epoch(), last_offset=0, touched_at=now)
                    for name in missing
                ],
                ignore_conflicts=True,
            )
            locked = manager.select_for_update().filter(channel__in=missing).order_by("channel")
            rows.update((row.channel, row) for row in locked)
        else:
            raise OperationalError(f"history rows of {names!r} vanished while being locked")
        cutoff = now - timedelta(seconds=self.ttl)
        renewed = [row for row in rows.values() if row.touched_at < cutoff]
        if renewed:
            # Quiet for longer than ttl: its history is gone, so its epoch goes with it.
            HistoryMessage.objects.using(using).filter(channel__in=renewed).delete()
            for row in renewed:
                row.epoch = new_epoch()
                row.last_offset = 0
        return rows

    def _save_rows(self, rows: list[HistoryChannel], using: str) -> None:
        """Write the rows' epoch, last offset and time: one prepared UPDATE, run per row.

        ``bulk_update()`` builds a CASE expression per column through the ORM, which costs
        milliseconds per batch of a few dozen channels; this is the same UPDATE by primary key.
        """
        connection = connections[using]
        quote = connection.ops.quote_name
        table = quote(HistoryChannel._meta.db_table)
        sql = (
            f"UPDATE {table} SET {quote('epoch')} = %s, {quote('last_offset')} = %s, "
            f"{quote('touched_at')} = %s WHERE {quote('id')} = %s"
        )
        adapt = connection.ops.adapt_datetimefield_value
        params = [(row.epoch, row.last_offset, adapt(row.touched_at), row.pk) for row in rows]
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)

    def _trim(self, rows: list[HistoryChannel], using: str, now: datetime) -> None:
        """Delete each channel's messages beyond ``size`` and older than ``ttl``.

        One prepared DELETE per bound, run per channel: each is a range of one index,
        (channel, offset) or (channel, published_at). (One DELETE with an OR of them all is a
        table scan on SQLite, and building a query per channel through the ORM costs more than
        running it.)
        """
        connection = connections[using]
        quote = connection.ops.quote_name
        table = quote(HistoryMessage._meta.db_table)
        channel, offset, published = quote("channel_id"), quote("offset"), quote("published_at")
        full = [
            (row.pk, row.last_offset - self.size) for row in rows if row.last_offset > self.size
        ]
        cutoff = connection.ops.adapt_datetimefield_value(now - timedelta(seconds=self.ttl))
        with connection.cursor() as cursor:
            if full:
                cursor.executemany(
                    f"DELETE FROM {table} WHERE {channel} = %s AND {offset} <= %s", full
                )
            cursor.executemany(
                f"DELETE FROM {table} WHERE {channel} = %s AND {published} < %s",
                [(row.pk, cutoff) for row in rows],
            )

    def sweep(self) -> None:
        """Delete the channels quiet for longer than ``ttl``, with their messages.

        (Busy channels lose their old messages on every write.) ``append`` runs this every
        ``sweep_interval`` seconds, at most ``sweep_batch`` channels at a time; a failure is
        logged, not raised: reads never return expired messages, so a late sweep only costs
        space.
        """
        using = self.using
        cutoff = timezone.now() - timedelta(seconds=self.ttl)
        try:
            if connections[using].in_atomic_block:
                self._in_own_thread(
                    lambda: self._retrying(lambda: self._sweep(using, cutoff), using)
                )
            else:
                self._retrying(lambda: self._sweep(using, cutoff), using)
        except (DatabaseError, PublishError) as exc:
            logger.warning("rtbridge: sweeping the history tables failed: %s", exc)

    #: Channels one sweep deletes at most (the next sweep takes the rest).
    sweep_batch = 1000

    def _sweep(self, using: str, cutoff: datetime) -> None:
        # Locked, so a publish cannot touch a row between this look and its deletion; rows a
        # publisher holds are skipped (they are not quiet).
        quiet = list(
            HistoryChannel.objects.using(using)
            .select_for_update(skip_locked=True)
            .filter(touched_at__lt=cutoff)
            .values_list("pk", flat=True)[: self.sweep_batch]
        )
        if quiet:
            HistoryMessage.objects.using(using).filter(channel_id__in=quiet).delete()
            HistoryChannel.objects.using(using).filter(pk__in=quiet).delete()

    # Resuming ----------------------------------------------------------------------------

    def replay(self, channel: str, since: Position | None) -> Replay:
        """Return what a client at ``since`` missed on ``channel``.

        A channel never published (or expired) gets its position now, so the epoch a client
        learns here is the one the next publish continues.
        """
        using = self.using
        return self._retrying(lambda: self._replay(channel, since, using), using)

    def _replay(self, channel: str, since: Position | None, using: str) -> Replay:
        now = timezone.now()
        cutoff = now - timedelta(seconds=self.ttl)
        row = HistoryChannel.objects.using(using).filter(channel=channel).first()
        if row is None or row.touched_at < cutoff:
            row = self._establish(channel, using)
        top = Position(row.last_offset, row.epoch)
        channel_id = row.pk

        def read_after(offset: int) -> list[Entry]:
            found = (
                HistoryMessage.objects.using(using)
                .filter(
                    channel_id=channel_id,
                    offset__gt=offset,
                    offset__lte=top.offset,
                    published_at__gte=cutoff,
                )
                .order_by("offset")
                .values_list("offset", "event", "payload", "exclude")[: self.size]
            )
            return [
                Entry(number, event, text, exclude or None)
                for number, event, text, exclude in found
            ]

        return replay_from(channel, top, since, read_after)

    def _establish(self, channel: str, using: str) -> HistoryChannel:
        now = timezone.now()
        (row,) = self._lock_rows([channel], using, now).values()
        row.touched_at = now
        self._save_rows([row], using)
        return row

    # Threads and connections -------------------------------------------------------------

    def _in_own_thread(self, work: Callable[[], T]) -> T:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="rtbridge-history")
            executor = self._executor
        return executor.submit(work).result()

    def release(self) -> None:
        """Close the calling thread's connection to the history database."""
        connections[self.using].close()

    def close(self) -> None:
        """Close the connection of the store's own thread and stop it."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.submit(self.release).result()
            executor.shutdown(wait=True)
