"""What the operator features cost: metrics on the fan-out path, and deflate's memory per socket.

Run: ``python -m benchmarks.bench_operators`` (a few minutes) or ``--quick``. Needs
``redis-server``. Everything runs on 127.0.0.1 in processes started here.

* **Metrics on vs off**: ``rtbridge serve`` (Redis broker) with 1,000 subscribed sockets held
  by the fan-out benchmark's load clients; peak deliveries/s of ~100-byte messages published
  flat out, with ``metrics_path`` at its default (``/metrics`` on: the latency histogram is
  observed per message) and ``None`` (off). Rounds alternate on/off so drift of a shared
  machine hits both; the median of each is compared. Target: on ≥ 95 % of off.
* **Memory per idle socket**: server RSS with N subscribed sockets minus its RSS before any,
  with ``compression`` off and on (every client offers permessage-deflate, as browsers do),
  idle and after one message went to every socket (zlib allocates part of its state on
  first use).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from typing import Any

from benchmarks.bench_fanout import (
    ServerUnderTest,
    connect,
    flush_redis,
    rss_kib,
    run_phase,
    start_clients,
)
from benchmarks.common import print_table, write_results
from benchmarks.fanout.client import raise_nofile_limit
from rtbridge.backends.redis import RedisBackend
from rtbridge.messages import Message
from tests.services import RedisServer, redis_server_binary


def with_server_options(options: dict[str, Any]) -> None:
    # benchmarks/fanout/rtbridge_settings.py reads it; the server inherits the environment.
    os.environ["BENCH_RTBRIDGE_SERVER"] = json.dumps(options)


def fanout_round(metrics: bool, subscribers: int, redis_url: str, messages: int) -> dict[str, Any]:
    flush_redis(redis_url)
    with_server_options({} if metrics else {"metrics_path": None})
    server = ServerUnderTest("rtbridge", redis_url)
    server.start()
    clients = start_clients(2)
    try:
        time.sleep(0.5)
        connected = connect(server, clients, subscribers)
        if connected["ready"] != subscribers:
            raise RuntimeError(f"only {connected['ready']} of {subscribers} sockets ready")
        time.sleep(0.5)
        peak = run_phase(server, clients, subscribers, messages, 0.0)
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                client.ask({"cmd": "close"})
            client.stop()
        server.stop()
    return {
        "metrics": "on" if metrics else "off",
        "deliveries_per_s": round(peak.deliveries_per_s),
        "lost": peak.lost,
        "server_cpu_s": round(peak.server_cpu, 2),
        "deliveries_per_server_cpu_s": round(peak.received / peak.server_cpu)
        if peak.server_cpu
        else None,
    }


async def hold_sockets(port: int, count: int, compression: str | None) -> list[Any]:
    from websockets.asyncio.client import connect as ws_connect

    sockets = []
    for start in range(0, count, 50):
        batch = await asyncio.gather(
            *(
                ws_connect(
                    f"ws://127.0.0.1:{port}/rtbridge/ws",
                    compression=compression,
                    max_size=None,
                    ping_interval=None,
                )
                for _ in range(start, min(count, start + 50))
            )
        )
        sockets.extend(batch)
    for number, socket in enumerate(sockets):
        await socket.recv()  # welcome
        await socket.send(json.dumps({"op": "subscribe", "id": number, "channel": "bench"}))
    for socket in sockets:
        await socket.recv()  # ack
    return sockets


def memory_case(compression: bool, sockets: int, redis_url: str) -> dict[str, Any]:
    flush_redis(redis_url)
    with_server_options({"compression": compression})
    server = ServerUnderTest("rtbridge", redis_url)
    server.start()

    async def run() -> dict[str, Any]:
        await asyncio.sleep(0.5)
        baseline = rss_kib(server.pid)
        held = await hold_sockets(server.port, sockets, "deflate")
        negotiated = sum(
            "permessage-deflate" in (s.response.headers.get("Sec-WebSocket-Extensions") or "")
            for s in held
        )
        await asyncio.sleep(1.0)
        idle = rss_kib(server.pid)
        backend = RedisBackend(url=redis_url)
        await asyncio.to_thread(backend.publish, Message("bench", "tick", {"text": "hi " * 30}))
        for socket in held:
            await socket.recv()
        await asyncio.sleep(1.0)
        used = rss_kib(server.pid)
        for socket in held:
            await socket.close()
        return {
            "compression": "on" if compression else "off",
            "sockets": sockets,
            "deflate_negotiated": negotiated,
            "kib_per_idle_conn": round((idle - baseline) / sockets, 1),
            "kib_per_conn_after_one_message": round((used - baseline) / sockets, 1),
        }

    try:
        return asyncio.run(run())
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (fewer rounds)")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=None, help="rounds per mode (default 5)")
    args = parser.parse_args()
    raise_nofile_limit()
    binary = redis_server_binary()
    if binary is None:
        print("redis-server not found", file=sys.stderr)
        return 1
    redis_server = RedisServer(binary=binary)
    redis_server.start()
    rounds = args.rounds or (1 if args.quick else 5)
    messages = 200 if args.quick else 1000
    try:
        fanout: list[dict[str, Any]] = []
        for number in range(rounds):
            # Alternate which mode goes first, so a trend in the machine's load is shared.
            for metrics in (True, False) if number % 2 == 0 else (False, True):
                row = fanout_round(metrics, args.subscribers, redis_server.url, messages)
                row["round"] = number + 1
                fanout.append(row)
                print(row, flush=True)
        on = statistics.median(r["deliveries_per_s"] for r in fanout if r["metrics"] == "on")
        off = statistics.median(r["deliveries_per_s"] for r in fanout if r["metrics"] == "off")
        per_cpu = {
            mode: statistics.median(
                r["deliveries_per_server_cpu_s"] or 0 for r in fanout if r["metrics"] == mode
            )
            for mode in ("on", "off")
        }
        summary = {
            "subscribers": args.subscribers,
            "messages_per_round": messages,
            "rounds": rounds,
            "median_on": round(on),
            "median_off": round(off),
            "on_vs_off_pct": round(100 * on / off, 1),
            "per_cpu_s_on": round(per_cpu["on"]),
            "per_cpu_s_off": round(per_cpu["off"]),
            "target": "≥ 95 %",
            "load1": round(os.getloadavg()[0], 2),
        }
        memory = [
            memory_case(compression, 200 if args.quick else 1000, redis_server.url)
            for compression in (False, True)
        ]
    finally:
        redis_server.stop()
    print_table("Fan-out with metrics on and off (each round)", fanout)
    print_table("Metrics on vs off (medians)", [summary])
    print_table("Memory per connection, permessage-deflate off and on", memory)
    name = "operators-quick" if args.quick else "operators"
    command = "python -m benchmarks.bench_operators" + (" --quick" if args.quick else "")
    rows = [
        *({"case": "fanout", **row} for row in fanout),
        {"case": "metrics-summary", **summary},
        *({"case": "memory", **row} for row in memory),
    ]
    print("wrote", write_results(name, command, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
