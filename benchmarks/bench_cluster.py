"""Redis Cluster: one node's fan-out over a 3-shard cluster vs one Redis, and publish latency.

Run: ``python -m benchmarks.bench_cluster`` (about 3 minutes) or ``--quick`` (a smoke run).
Needs ``redis-server`` and ``redis-cli``. Everything runs on 127.0.0.1 in processes started
here: one ``redis-server`` and a 3-primary/3-replica Redis Cluster (the test suite's
fixtures), one rtbridge server node, a publisher and two load-client processes
(``benchmarks/fanout``).

* **Fan-out.** ``--sockets`` sockets (2,400) on the node, spread evenly over ``--channels``
  channels (6: ``bench.0`` ...), whose slots fall on all three shards; the publisher sends
  ~100-byte messages to the channels in turn, flat out (``publish_many`` of 20), then at
  half that rate for the latency, and at 20 messages/s (the latency floor). The same node
  code runs against one Redis and against the cluster, in alternating rounds of the same
  run; each row is the median of the rounds.
  Redis' own time inside the publish script (``INFO commandstats``, all primaries) is
  reported per message, batched and one message per call (the cluster's shards also have a
  replica each, which the single Redis has not).
* **Publish latency.** ``RedisBackend.publish()`` in this process, one call at a time: a
  message on 1 channel and one on 3 channels on 3 different shards (a collection, an object
  and a filter channel), one Redis vs the cluster client, interleaved.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_fanout import (
    Child,
    cpu_of,
    percentile,
    rss_kib,
    spawn,
    start_clients,
    stop_process,
)
from benchmarks.common import print_table, write_results
from benchmarks.fanout.client import raise_nofile_limit
from rtbridge.redis_wire import channel_key, key_slot
from tests.services import (
    DATA_PASSWORD,
    RedisClusterNodes,
    RedisServer,
    free_port,
    redis_server_binary,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parent.parent
PUBLISH_BATCH = 20
# Messages/s of the last phase: the latency floor, at a rate nobody is short of CPU for.
SLOW_RATE = 20.0
PAYLOAD = {"t": 0, "i": 0, "p": "x" * 58}


def redis_options(kind: str, single: RedisServer, cluster: RedisClusterNodes) -> dict[str, Any]:
    if kind == "single":
        return {"url": single.url}
    return {"cluster": {"startup_nodes": cluster.startup_nodes[:3], "password": DATA_PASSWORD}}


def primaries_of(kind: str, single: RedisServer, cluster: RedisClusterNodes) -> list[RedisServer]:
    return [single] if kind == "single" else cluster.primary_nodes()


def script_stats(servers: list[RedisServer], reset: bool = False) -> tuple[int, int]:
    """Return ``(calls, microseconds)`` Redis spent in scripts (``INFO commandstats``).

    Redis' own accounting of the time inside each command, so the machine's other load
    does not count (the publish script's SPUBLISH/PUBLISH is inside it).
    """
    calls = usec = 0
    for server in servers:
        with contextlib.closing(server.client()) as client:
            if reset:
                client.config_resetstat()
                continue
            stats = client.info("commandstats")
        for name in ("cmdstat_evalsha", "cmdstat_eval"):
            calls += int(stats.get(name, {}).get("calls", 0))
            usec += int(stats.get(name, {}).get("usec", 0))
    return calls, usec


class Node:
    """One rtbridge server process (``rtbridge serve``) fed by the given Redis."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.port = free_port()
        self.env = {"BENCH_REDIS_OPTIONS": json.dumps(options)}
        argv = [sys.executable, "-m", "rtbridge", "serve", "-v", "0"]
        argv += ["--settings", "benchmarks.fanout.rtbridge_settings", "--port", str(self.port)]
        self.child = spawn("node", argv, env=self.env)
        wait_for_port(self.port, timeout=20)

    @property
    def pid(self) -> int:
        return self.child.process.pid

    def stop(self) -> None:
        stop_process(self.child.process)
        self.child.stderr.close()


def connect(node: Node, clients: list[Child], sockets: int, channels: int) -> list[int]:
    """Open ``sockets`` sockets, the same number on each channel; return sockets per client."""
    per_client = [0] * len(clients)
    for channel in range(channels):
        share = sockets // channels
        for index, client in enumerate(clients):
            count = share // len(clients) + (index < share % len(clients))
            answer = client.ask(
                {
                    "cmd": "connect",
                    "kind": "rtbridge",
                    "port": node.port,
                    "path": "/rtbridge/ws",
                    "count": count,
                    "channel": f"bench.{channel}",
                    "concurrency": 32,
                }
            )
            if answer["failed"]:
                raise RuntimeError(f"sockets failed: {answer['error']}")
            per_client[index] += count
    return per_client


def phase(
    node: Node,
    clients: list[Child],
    per_client: list[int],
    channels: int,
    count: int,
    rate: float,
    primaries: list[RedisServer],
) -> dict[str, Any]:
    """Publish ``count`` messages over the channels; return what arrived and who spent CPU."""
    batch = PUBLISH_BATCH if rate == 0 else 1
    argv = [sys.executable, "-m", "benchmarks.fanout.publisher", "--system", "rtbridge"]
    argv += ["--count", str(count), "--rate", str(rate), "--batch", str(batch)]
    argv += ["--channels", str(channels)]
    publisher = spawn("publisher", argv, env=node.env)
    try:
        assert publisher.receive().get("ready")
        # Each socket gets the messages of its own channel: count / channels of them.
        expected = [n * count // channels for n in per_client]
        for client, total in zip(clients, expected, strict=True):
            client.send({"cmd": "arm", "sample_every": max(1, total // 20_000)})
        for client in clients:
            client.receive()
        node_cpu = cpu_of(node.pid)
        script_stats(primaries, reset=True)
        publisher.send("go")
        deadline = 60 + count / max(rate, 1) if rate else 120
        for client, total in zip(clients, expected, strict=True):
            client.send({"cmd": "collect", "expected": total, "quiet": 10, "deadline": deadline})
        results = [client.receive() for client in clients]
        node_cpu = cpu_of(node.pid) - node_cpu
        calls, usec = script_stats(primaries)
        done = publisher.receive()
    finally:
        publisher.stop()
    last = max((r["last_ns"] for r in results if r["received"]), default=done["start_ns"])
    seconds = (last - done["start_ns"]) / 1e9
    received = sum(r["received"] for r in results)
    latencies = sorted(v for r in results for v in r["latencies_us"])
    return {
        "received": received,
        "lost": sum(expected) - received,
        "seconds": seconds,
        "deliveries_per_s": received / seconds if seconds > 0 else 0.0,
        "node_cpu": node_cpu,
        "script_calls": calls,
        "script_usec": usec,
        "p50_ms": percentile(latencies, 0.50) / 1000,
        "p99_ms": percentile(latencies, 0.99) / 1000,
        "published": done["published"],
        "errors": done["errors"],
    }


def fanout_round(
    kind: str,
    single: RedisServer,
    cluster: RedisClusterNodes,
    sockets: int,
    channels: int,
    count: int,
    latency_seconds: float,
) -> dict[str, Any]:
    node = Node(redis_options(kind, single, cluster))
    clients = start_clients(2)
    try:
        time.sleep(1.0)
        baseline = rss_kib(node.pid)
        per_client = connect(node, clients, sockets, channels)
        time.sleep(1.0)
        loaded = rss_kib(node.pid)
        primaries = primaries_of(kind, single, cluster)
        peak = phase(node, clients, per_client, channels, count, 0.0, primaries)
        rate = peak["deliveries_per_s"] / (sockets / channels) / 2  # messages/s, half peak
        latency_count = max(channels, int(rate * latency_seconds))
        latency = phase(node, clients, per_client, channels, latency_count, rate, primaries)
        # And at a low fixed rate: the latency floor when nobody is short of CPU.
        slow_count = int(SLOW_RATE * latency_seconds)
        slow = phase(node, clients, per_client, channels, slow_count, SLOW_RATE, primaries)
    finally:
        for client in clients:
            # A client that died already raised with its stderr; nothing to close then.
            with contextlib.suppress(Exception):
                client.ask({"cmd": "close"})
            client.stop()
        node.stop()
    messages = peak["published"]
    return {
        "redis": kind,
        "sockets": sockets,
        "channels": channels,
        "kib_per_conn": round((loaded - baseline) / sockets, 1),
        "peak_msgs": count,
        "deliveries_per_s": peak["deliveries_per_s"],
        "lost": peak["lost"] + latency["lost"] + slow["lost"],
        "errors": peak["errors"] + latency["errors"] + slow["errors"],
        "node_cpu_pct": 100 * peak["node_cpu"] / (peak["seconds"] or 1),
        "deliveries_per_node_cpu_s": peak["received"] / peak["node_cpu"]
        if peak["node_cpu"]
        else 0.0,
        # Time inside Redis per message (all primaries), batched (publish_many of 20, split
        # per slot on the cluster) and one message per call (as a Django process publishes).
        "redis_us_per_msg": peak["script_usec"] / messages if messages else 0.0,
        "script_calls_per_msg": peak["script_calls"] / messages if messages else 0.0,
        "redis_us_per_single_publish": latency["script_usec"] / max(1, latency["published"]),
        "lat_rate_msgs_per_s": rate,
        "lat_p50_ms": latency["p50_ms"],
        "lat_p99_ms": latency["p99_ms"],
        f"lat{SLOW_RATE:g}_p50_ms": slow["p50_ms"],
        f"lat{SLOW_RATE:g}_p99_ms": slow["p99_ms"],
    }


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in rows[0].items():
        if isinstance(value, float):
            out[key] = round(statistics.median(r[key] for r in rows), 2)
        elif key in ("lost", "errors"):
            out[key] = sum(r[key] for r in rows)
        else:
            out[key] = value
    out["rounds"] = len(rows)
    return out


def publish_latency(
    single: RedisServer, cluster: RedisClusterNodes, samples: int
) -> list[dict[str, Any]]:
    """Time ``RedisBackend.publish()`` one call at a time, one Redis vs the cluster client."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.fanout.rtbridge_settings")
    import django

    django.setup()
    from rtbridge.backends.redis import RedisBackend
    from rtbridge.messages import Message

    backends = {
        kind: RedisBackend(**redis_options(kind, single, cluster)) for kind in ("single", "cluster")
    }
    # Three channels of one model change on three different shards.
    shards: dict[int, str] = {}
    candidates = ["todo.todoitem", *(f"todo.todoitem.{n}" for n in range(1, 50))]
    candidates += [f"todo.todoitem;todo_list_id={n}" for n in range(1, 50)]
    for name in candidates:
        port = cluster.primary_for_slot(key_slot(channel_key("rtbridge:", name))).port
        shards.setdefault(port, name)
    three = sorted(shards.values())[:3]
    messages = {
        "1 channel": Message(three[0], "updated", PAYLOAD),
        "3 channels, 3 shards": Message(three, "updated", PAYLOAD),
    }
    timings: dict[tuple[str, str], list[float]] = {
        (kind, what): [] for kind in backends for what in messages
    }
    for backend in backends.values():
        backend.open()
        for message in messages.values():
            for _ in range(200):  # warm the pools and the slot map
                backend.publish(message)
    for _ in range(samples):
        for (kind, what), bucket in timings.items():
            started = time.perf_counter()
            backends[kind].publish(messages[what])
            bucket.append((time.perf_counter() - started) * 1e6)
    for backend in backends.values():
        backend.close()
    rows = []
    for (kind, what), bucket in timings.items():
        bucket.sort()
        rows.append(
            {
                "redis": kind,
                "message": what,
                "samples": len(bucket),
                "p50_us": round(bucket[len(bucket) // 2], 1),
                "p99_us": round(bucket[int(len(bucket) * 0.99)], 1),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description="Redis Cluster vs one Redis, same run.")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--sockets", type=int, default=None, help="default 2400 (quick 240)")
    parser.add_argument("--channels", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=None, help="default 3 (quick 1)")
    parser.add_argument("--results", default=None, metavar="NAME")
    args = parser.parse_args()
    sockets = args.sockets or (240 if args.quick else 2400)
    rounds = args.rounds or (1 if args.quick else 3)
    count = (200 if args.quick else 600) * args.channels  # messages per peak
    raise_nofile_limit()
    binary = redis_server_binary()
    if binary is None:
        print("redis-server not found (apt install redis-server)", file=sys.stderr)
        return 2
    command = "python -m benchmarks.bench_cluster" + "".join(f" {a}" for a in sys.argv[1:])
    print(f"{command}: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}", flush=True)
    single = RedisServer(binary=binary)
    single.start()
    cluster = RedisClusterNodes(binary=binary)
    try:
        cluster.start()
        spread = sorted(
            {cluster.primary_for_slot(key_slot_of(f"bench.{n}")).port for n in range(args.channels)}
        )
        print(f"{args.channels} channels on {len(spread)} shards", flush=True)
        by_kind: dict[str, list[dict[str, Any]]] = {"single": [], "cluster": []}
        for number in range(rounds):
            for kind in ("single", "cluster") if number % 2 == 0 else ("cluster", "single"):
                row = fanout_round(
                    kind,
                    single,
                    cluster,
                    sockets,
                    args.channels,
                    count,
                    latency_seconds=2.0 if args.quick else 4.0,
                )
                by_kind[kind].append(row)
                print(json.dumps(row), flush=True)
        fanout = [median_row(by_kind["single"]), median_row(by_kind["cluster"])]
        fanout[1]["shards"] = len(spread)
        fanout[0]["shards"] = 1
        latency = publish_latency(single, cluster, 300 if args.quick else 3000)
    finally:
        cluster.stop()
        single.stop()
    ratio = fanout[1]["deliveries_per_s"] / fanout[0]["deliveries_per_s"]
    print_table("Fan-out of one node: one Redis vs a 3-shard cluster (medians)", fanout)
    print_table("RedisBackend.publish(), one call at a time", latency)
    print(f"\ncluster / single deliveries per second: {ratio:.2f}")
    path = write_results(
        args.results or ("cluster-quick" if args.quick else "cluster"),
        command,
        [{"table": "fanout", **row} for row in fanout]
        + [{"table": "fanout-round", **row} for kind in by_kind for row in by_kind[kind]]
        + [{"table": "publish", **row} for row in latency]
        + [{"table": "ratio", "cluster_over_single_deliveries": round(ratio, 3)}],
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


def key_slot_of(channel: str) -> int:
    return key_slot(channel_key("rtbridge:", channel))


if __name__ == "__main__":
    sys.exit(main())
