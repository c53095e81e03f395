"""What continuity costs on the self-hosted transport (issue 12), side by side in one run.

Run: ``python -m benchmarks.bench_continuity`` (about 5 minutes; ``--quick`` for a smoke run).
Needs ``redis-server``; everything runs on 127.0.0.1 (the fan-out and reconnect parts reuse
``benchmarks.bench_fanout``'s server, publisher and load-client processes). Rows:

* ``publish()`` to Redis, one channel, per call (p50/p99 of single timed calls, 7 interleaved
  rounds): a ``PING`` (the round trip every call pays), a plain ``PUBLISH`` of a protocol 1
  body (what ``RedisBackend`` did before positions), the append script with history off
  (positions only), and with history at the default bounds; and the script's own time in
  Redis (``INFO commandstats``). Targets: with history ≤ 2x without, p50 ≤ 60 µs.
* fan-out deliveries/s at 1,000 subscribers, history on vs off (server and publisher), the
  peak phase of ``bench_fanout`` with 5,000 messages, 4 alternated rounds, medians (and
  deliveries per server CPU-second). Target: with history ≥ 90 % of without.
* 1,000 clients reconnecting at once with ``since``, each missing 100 messages: time from the
  first reconnect to the last replayed frame. Target: ≤ 5 s.
* Redis memory per channel of history at the default bounds (``MEMORY USAGE ... SAMPLES 0``
  of the stream and the position hash), for ~100-byte and ~300-byte payloads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import django
from django.conf import settings

settings.configure(
    SECRET_KEY="rtbridge-bench-continuity",
    INSTALLED_APPS=["rtbridge"],
    DATABASES={},
    USE_TZ=True,
    RTBRIDGE_BACKEND="redis",
)
django.setup()

import redis
from django.test import override_settings

from benchmarks import bench_fanout
from benchmarks.common import print_table, write_results
from benchmarks.fanout.client import raise_nofile_limit
from rtbridge import conf, redis_wire
from rtbridge.backends.redis import RedisBackend
from rtbridge.messages import Message
from tests.services import RedisServer, redis_server_binary

PAYLOAD_100 = {"t": 1764590000000000000, "i": 123456, "p": "x" * 58}
PAYLOAD_300 = {
    "id": 123456,
    "text": "buy oat milk and two loaves of rye bread — the dark kind",
    "done": False,
    "todo_list_id": 7,
    "created_at": "2026-12-01T11:03:37.123456+00:00",
    "updated_at": "2026-12-01T11:04:02.654321+00:00",
    "owner": {"id": 42, "name": "Ann Example", "email": "ann@example.com"},
    "tags": ["groceries", "weekly", "urgent"],
    "position": 17,
}


# publish() --------------------------------------------------------------------------------


def _timed(call: Callable[[int], None], count: int) -> list[float]:
    samples = []
    for number in range(count):
        start = time.perf_counter_ns()
        call(number)
        samples.append((time.perf_counter_ns() - start) / 1000)
    return samples


def bench_publish(url: str, count: int, rounds: int = 7) -> list[dict[str, Any]]:
    """Time single-channel publishes: plain PUBLISH, positions only, positions + history."""
    plain_client = redis.Redis.from_url(url)
    with override_settings(RTBRIDGE_HISTORY=None):
        off = RedisBackend(url=url, prefix="off:")
    on = RedisBackend(url=url, prefix="on:")
    for backend in (off, on):
        backend.open()
        backend.publish(Message("warm", "e", 1))  # loads the script

    def plain(number: int) -> None:
        message = Message("todo.todoitem.123", "updated", {**PAYLOAD_100, "i": number})
        for channel, body in redis_wire.encode_message(message, "plain:"):
            plain_client.publish(channel, body)

    def through(backend: RedisBackend) -> Callable[[int], None]:
        def call(number: int) -> None:
            backend.publish(Message("todo.todoitem.123", "updated", {**PAYLOAD_100, "i": number}))

        return call

    def ping(number: int) -> None:
        plain_client.ping()

    variants = {
        "PING (the machine's Redis round trip)": ping,
        "PUBLISH, protocol 1 body (no position)": plain,
        "append script, history off (positions only)": through(off),
        "append script, history on (size 1000, ttl 600 s)": through(on),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, call in variants.items():
            samples[name] += _timed(call, count)
    # The same calls once more, for the time Redis itself spends on each command.
    commands = dict(zip(variants, ("ping", "publish", "evalsha", "evalsha"), strict=True))
    in_redis = {}
    for name, call in variants.items():
        plain_client.config_resetstat()
        for number in range(count):
            call(number)
        stats = plain_client.info("commandstats")[f"cmdstat_{commands[name]}"]
        in_redis[name] = float(stats["usec_per_call"])
    rows = []
    for name, values in samples.items():
        values.sort()
        rows.append(
            {
                "what": name,
                "p50_us": round(statistics.median(values), 1),
                "p99_us": round(values[int(0.99 * len(values))], 1),
                "in_redis_us": in_redis[name],
                "calls": len(values),
            }
        )
    plain_client.close()
    return rows


# Memory ---------------------------------------------------------------------------------


def bench_memory(url: str) -> list[dict[str, Any]]:
    """Fill one channel per payload size to the default bounds; measure its Redis memory."""
    history = conf.history()
    client = redis.Redis.from_url(url)
    backend = RedisBackend(url=url, prefix="mem:")
    rows = []
    for label, data in (("~100 B", PAYLOAD_100), ("~300 B", PAYLOAD_300)):
        channel = f"todo.todoitem;todo_list_id={len(label)}{len(rows)}"
        message = Message(channel, "updated", data)
        backend.publish_many([message] * (2 * history.size))  # steady state of the trims
        stream = redis_wire.history_key("mem:", channel)
        position = redis_wire.position_key("mem:", channel)
        stream_bytes = int(client.memory_usage(stream, samples=0) or 0)
        position_bytes = int(client.memory_usage(position, samples=0) or 0)
        kept = int(client.xlen(stream))
        rows.append(
            {
                "payload": f"{label} ({message.size} B JSON)",
                "messages_kept": kept,
                "stream_bytes": stream_bytes,
                "position_bytes": position_bytes,
                "kib_per_channel": round((stream_bytes + position_bytes) / 1024, 1),
                "bytes_per_message": round(stream_bytes / kept),
            }
        )
    client.close()
    return rows


# Fan-out with and without history -------------------------------------------------------


def bench_fanout_history(url: str, rounds: int, quick: bool) -> list[dict[str, Any]]:
    """Peak deliveries/s at 1,000 subscribers, history on and off, alternated."""
    rows = []
    for _ in range(rounds):
        for system in ("rtbridge", "rtbridge-nohistory"):
            row = bench_fanout.run_case(
                system,
                1000,
                url,
                client_processes=2,
                quick=quick,
                latency_seconds=0,
                profile_dir=None,
                peak_only=True,
                # The most a burst may hold (bench_fanout.MAX_PEAK_MESSAGES): a longer peak
                # than bench_fanout's 1,000, so the publisher's pace weighs less.
                peak_count=None if quick else bench_fanout.MAX_PEAK_MESSAGES,
            )
            print(row, flush=True)
            rows.append(row)
    return rows


# 1,000 clients reconnecting at once -------------------------------------------------------


def bench_reconnect_storm(url: str, sockets: int, missed: int) -> dict[str, Any]:
    """Subscribe ``sockets`` clients, drop them all, publish ``missed``, resume them at once."""
    bench_fanout.flush_redis(url)
    server = bench_fanout.ServerUnderTest("rtbridge", url)
    server.start()
    clients = bench_fanout.start_clients(2)
    try:
        time.sleep(1.0)
        connected = bench_fanout.connect(server, clients, sockets)
        assert connected["ready"] == sockets, connected
        raw = redis.Redis.from_url(url, decode_responses=True)
        top = raw.hgetall(redis_wire.position_key(redis_wire.DEFAULT_PREFIX, "bench"))
        since = {"offset": int(top["offset"]), "epoch": top["epoch"]}
        for client in clients:  # every socket reset at once, as a network blip does
            client.ask({"cmd": "close"})
            client.stop()
        backend = RedisBackend(url=url)
        backend.publish_many(
            [Message("bench", "tick", {**PAYLOAD_100, "i": n}) for n in range(missed)]
        )
        clients = bench_fanout.start_clients(2)
        time.sleep(1.0)  # the new client processes are up and idle
        server_cpu = bench_fanout.cpu_of(server.pid)
        share = sockets // len(clients)
        for client in clients:
            client.send(
                {
                    "cmd": "connect",
                    "kind": "rtbridge",
                    "port": server.port,
                    "path": server.path,
                    "count": share,
                    "channel": "bench",
                    "concurrency": share,
                    "since": since,
                }
            )
        answers = [client.receive() for client in clients]
        for client in clients:
            client.send({"cmd": "collect", "expected": share * missed, "quiet": 10, "deadline": 60})
        results = [client.receive() for client in clients]
        server_cpu = bench_fanout.cpu_of(server.pid) - server_cpu
        raw.close()
    finally:
        for client in clients:
            # A client that died already raised with its stderr; nothing to close then.
            with contextlib.suppress(Exception):
                client.ask({"cmd": "close"})
            client.stop()
        server.stop()
    started = min(a["started_ns"] for a in answers)
    last = max(r["last_ns"] for r in results)
    return {
        "sockets": sockets,
        "missed_each": missed,
        "resumed": sum(a["ready"] for a in answers),
        "recovered_true": sum(a["recovered"] for a in answers),
        "replayed_frames": sum(r["received"] for r in results),
        "expected_frames": sockets * missed,
        "min_per_socket": min(r["min_per_socket"] for r in results),
        "all_acked_s": round(max(a["seconds"] for a in answers), 2),
        "all_resumed_s": round((last - started) / 1e9, 2),
        "server_cpu_s": round(server_cpu, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    args = parser.parse_args()
    raise_nofile_limit()
    binary = redis_server_binary()
    if binary is None:
        print("redis-server not found (apt install redis-server)", file=sys.stderr)
        return 2
    redis_server = RedisServer(binary=binary)
    redis_server.start()
    command = "python -m benchmarks.bench_continuity" + "".join(f" {a}" for a in sys.argv[1:])
    load_start = os.getloadavg()[0]
    print(f"{command}: {os.cpu_count()} cores, load {load_start:.2f}", flush=True)
    try:
        publish = bench_publish(redis_server.url, 300 if args.quick else 3000)
        print_table("publish(), one channel, µs per call", publish)
        memory = bench_memory(redis_server.url)
        print_table("Redis memory per channel at the default bounds", memory)
        storm = bench_reconnect_storm(redis_server.url, 200 if args.quick else 1000, 100)
        print_table("Clients reconnecting at once", [storm])
        fanout = bench_fanout_history(redis_server.url, 1 if args.quick else 4, args.quick)
        print_table("Fan-out at 1,000 subscribers, peak", fanout)
    finally:
        redis_server.stop()
    load_end = os.getloadavg()[0]
    by_name = {row["what"]: row for row in publish}
    names = list(by_name)[1:]  # after the PING row
    with_history = by_name[names[2]]["p50_us"]
    rate = {
        system: statistics.median(r["deliveries_per_s"] for r in fanout if r["system"] == system)
        for system in ("rtbridge", "rtbridge-nohistory")
    }
    per_cpu = {
        system: statistics.median(
            r["deliveries_per_server_cpu_s"] for r in fanout if r["system"] == system
        )
        for system in ("rtbridge", "rtbridge-nohistory")
    }
    checks = [
        {
            "check": "publish p50, history on / history off",
            "value": f"{with_history / by_name[names[1]]['p50_us']:.2f}x",
            "target": "≤ 2x",
            "met": with_history <= 2 * by_name[names[1]]["p50_us"],
        },
        {
            "check": "publish p50, history on / plain PUBLISH",
            "value": f"{with_history / by_name[names[0]]['p50_us']:.2f}x",
            "target": "≤ 2x",
            "met": with_history <= 2 * by_name[names[0]]["p50_us"],
        },
        {
            "check": "publish p50 with history",
            "value": f"{with_history} µs",
            "target": "≤ 60 µs",
            "met": with_history <= 60,
        },
        {
            "check": "fan-out @ 1,000, history on / off (median deliveries/s)",
            "value": f"{rate['rtbridge'] / rate['rtbridge-nohistory']:.1%}",
            "target": "≥ 90 %",
            "met": rate["rtbridge"] >= 0.9 * rate["rtbridge-nohistory"],
        },
        {
            "check": "fan-out @ 1,000, history on / off (median deliveries per server CPU-s)",
            "value": f"{per_cpu['rtbridge'] / per_cpu['rtbridge-nohistory']:.1%}",
            "target": "≥ 90 %",
            "met": per_cpu["rtbridge"] >= 0.9 * per_cpu["rtbridge-nohistory"],
        },
        {
            "check": f"{storm['sockets']} clients resume {storm['missed_each']} missed each",
            "value": f"{storm['all_resumed_s']} s, {storm['replayed_frames']}/"
            f"{storm['expected_frames']} frames, {storm['recovered_true']} recovered",
            "target": "≤ 5 s",
            "met": storm["all_resumed_s"] <= 5
            and storm["replayed_frames"] == storm["expected_frames"],
        },
    ]
    print_table("Targets (issue 12)", checks)
    print(f"\nload average: {load_start:.2f} at the start, {load_end:.2f} at the end")
    path = write_results(
        "continuity-quick" if args.quick else "continuity",
        command,
        [{"table": "publish", **r} for r in publish]
        + [{"table": "memory", **r} for r in memory]
        + [{"table": "reconnect", **storm}]
        + [{"table": "fanout", **r} for r in fanout]
        + [{"table": "targets", **c} for c in checks]
        + [{"table": "load", "load1_start": round(load_start, 2), "load1_end": round(load_end, 2)}],
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
