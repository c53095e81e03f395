"""What positions and history cost the hosted backends: the stores, publish(), the dispatcher.

Run: ``python -m benchmarks.bench_history`` (SQLite file) and
``BENCH_DB=postgres python -m benchmarks.bench_history`` (PostgreSQL on 127.0.0.1:5432); both
also run the ``"redis"`` store against a ``redis-server`` started here. Pusher goes to the
loopback Pusher API stand-in of the wire tests (it answers at once), so the rows measure
rtbridge, not a vendor's round trip.

Rows, side by side in one run (the variants take turns, round after round, so the load of a
shared machine hits them alike): the store's own ``append()`` per batch; ``publish()``
on the request thread with history off, on the database store and on the Redis store, in
background mode (the default: positions are assigned in the dispatcher's thread, so the request
never waits for the store) and in sync mode (the store's write is on the request); how fast the
dispatcher drains a burst; and one history endpoint answer of 100 missed messages.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

import django

django.setup()

from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings

import rtbridge
from benchmarks.common import print_table, write_results
from rtbridge.history import Position, load_store
from rtbridge.messages import Message
from rtbridge.models import HistoryChannel, HistoryMessage
from rtbridge.publishers import get_backend, load_backend, reset_backend
from tests.services import RedisServer, start_redis
from tests.wire.fakes.pusher import FakePusherAPI

DATA = {"id": 123, "text": "buy oat milk", "done": False, "todo_list_id": 7}
CHANNELS = ["todo.todoitem", "todo.todoitem.123", "todo.todoitem;todo_list_id=7"]
STORES = ("off", "database", "redis")


def history_setting(store: str) -> Any:
    return None if store == "off" else {"store": store, "size": 1000, "ttl": 600}


@contextmanager
def configured(store: str, redis: RedisServer, options: dict[str, Any]) -> Iterator[None]:
    prefix = f"bench{time.time_ns()}:"
    with override_settings(
        RTBRIDGE_BACKEND="pusher",
        RTBRIDGE_OPTIONS=options,
        RTBRIDGE_HISTORY=history_setting(store),
        RTBRIDGE_REDIS={"url": redis.url, "prefix": prefix},
        ROOT_URLCONF="tests.urls",
    ):
        try:
            yield
        finally:
            reset_backend()


def quantiles(costs: list[float]) -> dict[str, float]:
    costs = sorted(costs)
    return {"p50_us": statistics.median(costs), "p99_us": costs[int(len(costs) * 0.99)]}


def timed(count: int, call: Callable[[int], Any]) -> list[float]:
    out = []
    for i in range(count):
        start = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - start) * 1e6)
    return out


def store_rows(redis: RedisServer, rounds: int = 7) -> list[dict[str, Any]]:
    """Time ``append()`` of each store: one message on one channel, and on three (in turns)."""
    stores = {}
    for store in ("database", "redis"):
        with override_settings(
            RTBRIDGE_HISTORY=history_setting(store),
            RTBRIDGE_REDIS={"url": redis.url, "prefix": f"bench{time.time_ns()}:"},
        ):
            stores[store] = load_store()
    variants = [(store, channels) for store in stores for channels in (CHANNELS[:1], CHANNELS)]
    costs: dict[tuple[str, int], list[float]] = {(s, len(c)): [] for s, c in variants}
    for round_number in range(rounds + 1):
        for store, channels in variants:
            history = stores[store]
            assert history is not None

            def append(i: int, history: Any = history, channels: list[str] = channels) -> Any:
                return history.append([Message(channels, "updated", {**DATA, "n": i})])

            timing = timed(150, append)
            if round_number:  # the first round warms up (rows created, scripts loaded)
                costs[store, len(channels)] += timing
    for history in stores.values():
        assert history is not None
        history.close()
    return [
        {
            "what": f"{store} store: append() of 1 message, {count} channel(s)",
            "db": connection.vendor if store == "database" else "redis",
            "calls": len(timing),
            **quantiles(timing),
        }
        for (store, count), timing in costs.items()
    ]


def backends_by_store(redis: RedisServer, options: dict[str, Any]) -> dict[str, Any]:
    """Build one Pusher backend per store, alive together, so rounds can interleave them."""
    made = {}
    for store in STORES:
        with override_settings(
            RTBRIDGE_HISTORY=history_setting(store),
            RTBRIDGE_REDIS={"url": redis.url, "prefix": f"bench{time.time_ns()}:"},
        ):
            made[store] = load_backend("pusher", **options)
    return made


def publish_rows(redis: RedisServer, api: FakePusherAPI, rounds: int = 7) -> list[dict[str, Any]]:
    """Time ``publish()`` (3 channels) on the request thread for each store and mode.

    What ``rtbridge.publish()`` does with the backend: build the ``Message`` (validation, JSON)
    and ``send`` it. The stores take turns, ``rounds`` times, so a load swing on this shared
    machine hits all of them alike; the row pools every round.
    """
    rows = []
    base = {"app_id": "1", "key": "k", "secret": "s", "host": "127.0.0.1", "port": api.port}
    base["ssl"] = False
    for mode, count in (("background", 700), ("sync", 100)):
        backends = backends_by_store(redis, {**base, "mode": mode})
        costs: dict[str, list[float]] = {store: [] for store in STORES}
        try:
            for round_number in range(rounds + 1):
                for store, backend in backends.items():

                    def publish(i: int, backend: Any = backend) -> Any:
                        message = Message(
                            CHANNELS,
                            "updated",
                            {**DATA, "n": i},
                            max_bytes=backend.max_payload_bytes,
                        )
                        backend.send([message])

                    timing = timed(count, publish)
                    backend.flush(60)  # the next store's turn starts with an idle dispatcher
                    if round_number:  # the first round warms up (rows, scripts, sessions)
                        costs[store] += timing
            failed = {store: backend.failed_count for store, backend in backends.items()}
        finally:
            for backend in backends.values():
                backend.close()
        for store in STORES:
            rows.append(
                {
                    "what": f"publish() to pusher, mode={mode}, 3 channels, history={store}",
                    "db": connection.vendor if store == "database" else store,
                    "calls": len(costs[store]),
                    **quantiles(costs[store]),
                    "failed": failed[store],
                }
            )
    return rows


def drain_rows(redis: RedisServer, api: FakePusherAPI, rounds: int = 5) -> list[dict[str, Any]]:
    """Queue 1,000 one-channel messages at once; time until the dispatcher sent them all.

    The stores take turns, ``rounds`` times; the row is the median round.
    """
    rows = []
    options = {"app_id": "1", "key": "k", "secret": "s", "host": "127.0.0.1", "port": api.port}
    options["ssl"] = False
    backends = backends_by_store(redis, options)
    rates: dict[str, list[float]] = {store: [] for store in STORES}
    try:
        for round_number in range(rounds + 1):
            for store, backend in backends.items():
                messages = [
                    Message(f"todo.todoitem.{i % 50}", "updated", {**DATA, "n": i})
                    for i in range(1000)
                ]
                start = time.perf_counter()
                backend.publish_many(messages)
                backend.flush(120)
                if round_number:
                    rates[store].append(1000 / (time.perf_counter() - start))
        stats = {
            store: (backend.dispatcher.batches_count, backend.failed_count)
            for store, backend in backends.items()
        }
    finally:
        for backend in backends.values():
            backend.close()
    for store in STORES:
        rows.append(
            {
                "what": f"1,000 messages (50 channels) through the dispatcher, history={store}",
                "db": connection.vendor if store == "database" else store,
                "messages_per_s": statistics.median(rates[store]),
                "batches": stats[store][0],
                "failed": stats[store][1],
            }
        )
    return rows


def replay_rows(redis: RedisServer, api: FakePusherAPI) -> list[dict[str, Any]]:
    """Time one history endpoint answer of 100 missed messages (the POST a page makes)."""
    rows = []
    options = {"app_id": "1", "key": "k", "secret": "s", "host": "127.0.0.1", "port": api.port}
    options.update(ssl=False, mode="sync")
    for store in ("database", "redis"):
        with configured(store, redis, options):
            for i in range(300):
                rtbridge.publish("replay.room", "updated", {**DATA, "n": i})
            answer = get_backend().read_history("replay.room", None)
            since = Position(answer.offset - 100, answer.epoch)
            client = Client()
            body = {"channel": "replay.room", "since": since.as_json()}

            def ask(i: int, client: Client = client, body: dict[str, Any] = body) -> Any:
                reply = client.post("/rtbridge/history", body, content_type="application/json")
                assert len(reply.json()["messages"]) == 100
                return reply

            timed(20, ask)
            costs = timed(300, ask)
        rows.append(
            {
                "what": f"POST /rtbridge/history: 100 missed messages, {store} store",
                "db": connection.vendor if store == "database" else "redis",
                "calls": len(costs),
                **quantiles(costs),
            }
        )
    return rows


def storage_rows(redis: RedisServer) -> list[dict[str, Any]]:
    """Bytes one channel of history takes at the default bounds (1,000 messages of ``DATA``)."""
    rows = []
    payload = len(Message("x", "updated", DATA).payload)
    with override_settings(
        RTBRIDGE_HISTORY={"store": "redis", "size": 1000, "ttl": 600},
        RTBRIDGE_REDIS={"url": redis.url, "prefix": "size:"},
    ):
        history = load_store()
        assert history is not None
        for i in range(0, 1000, 100):
            history.append(
                [Message("size.room", "updated", {**DATA, "n": i + k}) for k in range(100)]
            )
        client = history.client  # type: ignore[attr-defined]
        used = sum(
            client.memory_usage(key, samples=0) or 0
            for key in (b"size:position:{size.room}", b"size:history:{size.room}")
        )
        history.close()
    rows.append(
        {
            "what": "redis store: one channel, 1,000 messages",
            "payload_bytes": payload,
            "bytes_per_message": used / 1000,
            "bytes_per_channel": used,
        }
    )
    if connection.vendor == "postgresql":
        # Fresh tables: dead rows left by the rows above would count as used space.
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE rtbridge_history_message, rtbridge_history_channel")
        with override_settings(RTBRIDGE_HISTORY={"store": "database", "size": 1000, "ttl": 600}):
            history = load_store()
            assert history is not None
            for channel in range(20):
                for i in range(0, 1000, 100):
                    history.append(
                        [
                            Message(f"size.{channel}", "updated", {**DATA, "n": i + k})
                            for k in range(100)
                        ]
                    )
            history.close()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE rtbridge_history_message")
            cursor.execute("SELECT pg_total_relation_size('rtbridge_history_message')")
            (used,) = cursor.fetchone()
        rows.append(
            {
                "what": "database store (PostgreSQL, table + indexes): 20 x 1,000 messages",
                "payload_bytes": payload,
                "bytes_per_message": used / 20000,
                "bytes_per_channel": used / 20,
            }
        )
    return rows


def main() -> None:
    call_command("migrate", verbosity=0)
    HistoryMessage.objects.all().delete()
    HistoryChannel.objects.all().delete()
    redis = start_redis()
    api = FakePusherAPI()
    api.start()
    try:
        groups = {
            "The stores' append() per batch (on the dispatcher's thread in background mode)": (
                store_rows(redis)
            ),
            "rtbridge.publish() on the request thread": publish_rows(redis, api),
            "Dispatcher throughput": drain_rows(redis, api),
            "History endpoint": replay_rows(redis, api),
            "Storage per channel at the default bounds": storage_rows(redis),
        }
    finally:
        api.stop()
        redis.stop()
    rows = []
    for title, group in groups.items():
        print_table(f"{title} ({connection.vendor})", group)
        rows += group
    name = "history-postgres" if connection.vendor == "postgresql" else "history-sqlite"
    command = "python -m benchmarks.bench_history"
    if connection.vendor == "postgresql":
        command = "BENCH_DB=postgres " + command
    print(f"\nwrote {write_results(name, command, rows)}")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
