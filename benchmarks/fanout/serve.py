"""The rtbridge server of the steady-state benchmark, with a loop-lag probe of its own.

Run by ``benchmarks.bench_steady`` as ``python benchmarks/fanout/serve.py --port P
--redis-url URL [--loop uvloop] [--probe-interval S]`` with ``PYTHONPATH`` set to the source
tree under test, so the same launcher runs today's server and older commits (``--variant``).
It raises its open-files limit (the benchmark's processes do; the library never does), starts
``Server`` on Redis with the settings of ``benchmarks.fanout.rtbridge_settings``, prints
``{"ready": true}`` and then answers commands, one JSON line each, on stdin:

``lag``
    the probe's wake-up lags since the previous ``lag``: count, p50/p99/max in ms, and from
    the server's own probe (``NodeStats``, when the tree under test has one) the wake-ups
    and those later than 5 ms in the same window.
``collect``
    run a full garbage collection now and answer how long it took (``{"ms": ...}``).
``stats``
    the server's ``NodeStats`` counters and its connection count.

Each ``lag`` also names the callbacks that ran longer than ``--slow-callback`` seconds
(4 ms; asyncio loops only), and reports the garbage collections of the window (count,
longest, total per generation, timed with ``gc.callbacks``): a full collection walks every
object of the process, so with thousands of connections it is one of the longest things the
loop does.

The probe is identical for every tree: a callback scheduled every ``--probe-interval``
seconds (5 ms) records how late it ran. Whatever held the loop (a sweep, a fan-out, a flush)
makes it late by as long as it ran, so its maximum is the longest stall the loop had.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import resource
import sys
import time
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.fanout.rtbridge_settings")

import django

django.setup()

from rtbridge.server import Server

try:
    from rtbridge.server.stats import LOOP_LAG_BOUNDS
except ImportError:  # a tree from before the server measured its loop lag
    LOOP_LAG_BOUNDS = ()

#: Open files the benchmark asks for (50,000 sockets and some spare); root may raise the hard
#: limit up to fs.nr_open.
NOFILE = 120_000


def raise_nofile_limit(wanted: int = NOFILE) -> int:
    """Raise this process's open-files limit to ``wanted`` if allowed; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(wanted, soft), max(wanted, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class LagProbe:
    """Record how late a periodic callback runs (actual minus scheduled wake-up)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self.loop = loop
        self.interval = interval
        self.lags_us: list[int] = []
        self._due = loop.time() + interval
        loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        now = self.loop.time()
        self.lags_us.append(int((now - self._due) * 1e6))
        # The next wake-up is one interval after this one ran, so one long stall counts once.
        self._due = now + self.interval
        self.loop.call_at(self._due, self._tick)

    def take(self) -> dict[str, Any]:
        lags, self.lags_us = sorted(self.lags_us), []
        if not lags:
            return {"n": 0}

        def at(q: float) -> float:
            return lags[min(len(lags) - 1, int(q * len(lags)))] / 1000

        return {"n": len(lags), "p50": at(0.5), "p99": at(0.99), "max": lags[-1] / 1000}


class GcPauses:
    """Time each garbage collection (``gc.callbacks``): a full one walks every object."""

    def __init__(self) -> None:
        self._started = 0.0
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def take(self) -> dict[str, Any]:
        pauses, self.pauses = self.pauses, {0: [], 1: [], 2: []}
        return {
            f"gen{generation}": {
                "n": len(times),
                "max_ms": round(1000 * max(times, default=0.0), 3),
                "total_ms": round(1000 * sum(times), 3),
            }
            for generation, times in pauses.items()
        }


class SlowCallbacks:
    """Name the loop callbacks that ran longer than ``threshold`` seconds (the lag's causes).

    Wraps ``asyncio.events.Handle._run`` (every callback and task step of an asyncio loop
    goes through it; uvloop's handles do not, so this reports nothing there). The cost is
    two clock reads per callback, on every tree under test alike.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.slow: list[tuple[float, str]] = []
        run = asyncio.events.Handle._run
        clock = time.perf_counter
        slow = self.slow

        def timed(handle: asyncio.events.Handle) -> None:
            started = clock()
            run(handle)
            took = clock() - started
            if took > threshold:
                slow.append((took, _callback_name(handle)))

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]

    def take(self) -> list[list[Any]]:
        slow, self.slow[:] = sorted(self.slow, reverse=True), []
        names: dict[str, list[Any]] = {}
        for took, name in slow:
            entry = names.setdefault(name, [name, 0, 0.0])
            entry[1] += 1
            entry[2] = max(entry[2], round(took * 1000, 2))
        return sorted(names.values(), key=lambda e: -e[2])[:8]


def _callback_name(handle: asyncio.events.Handle) -> str:
    callback: Any = handle._callback  # type: ignore[attr-defined]
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coroutine = owner.get_coro()
        return f"task {getattr(coroutine, '__qualname__', coroutine)}"
    return getattr(callback, "__qualname__", repr(callback))


class ServerLoopLag:
    """The server's own loop-lag counters (``NodeStats``) over the same windows as the probe."""

    def __init__(self, server: Server) -> None:
        self.stats = server.stats
        self._last: tuple[int, int] = (0, 0)

    def take(self) -> dict[str, Any] | None:
        # Trees from before the server had its own probe have no such counters.
        stats: Any = self.stats
        if not hasattr(stats, "loop_lag_buckets"):
            return None
        over = sum(
            n
            for bound, n in zip(
                (*LOOP_LAG_BOUNDS, float("inf")), stats.loop_lag_buckets, strict=True
            )
            if bound > 0.005
        )
        count, over_before = stats.loop_lag_count, self._last
        self._last = (count, over)
        return {
            "n": count - over_before[0],
            "over_5ms": over - over_before[1],
            "max_ms_since_start": round(stats.loop_lag_max * 1000, 3),
        }


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    server = Server(address="127.0.0.1", port=args.port, redis_url=args.redis_url)
    await server.astart()
    probe = LagProbe(loop, args.probe_interval)
    own = ServerLoopLag(server)
    gc_pauses = GcPauses()
    slow = SlowCallbacks(args.slow_callback) if args.slow_callback > 0 else None
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True, "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}))
    sys.stdout.flush()
    while True:
        line = (await reader.readline()).decode().strip()
        if not line:
            break
        if line == "lag":
            answer: dict[str, Any] = {
                "probe": probe.take(),
                "server": own.take(),
                "gc": gc_pauses.take(),
                "slow_callbacks": slow.take() if slow is not None else None,
            }
        elif line == "collect":
            started = time.perf_counter()
            gc.collect()
            answer = {"ms": round(1000 * (time.perf_counter() - started), 1)}
        elif line == "stats":
            answer = {
                **dataclasses.asdict(server.stats),
                "connections": len(server.hub.connections),
            }
        else:
            answer = {"error": f"unknown command {line!r}; use lag, collect or stats"}
        print(json.dumps(answer))
        sys.stdout.flush()
    await server.astop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--probe-interval", type=float, default=0.005)
    parser.add_argument(
        "--slow-callback",
        type=float,
        default=0.004,
        help="name the callbacks longer than this many seconds in each lag answer (0: off)",
    )
    args = parser.parse_args()
    raise_nofile_limit()
    if args.loop == "uvloop":
        import uvloop

        uvloop.run(serve(args))
    else:
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
