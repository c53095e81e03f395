"""Where an idle subscribed connection's memory goes: tracemalloc by file, and the GC's view.

``python -m benchmarks.profiles.memory [--sockets 2000] [--top 25]`` starts a server in this
process (in-memory broker), opens that many subscribed sockets with the C load client, and
prints the Python heap each socket added by the file that allocated it, the objects the
garbage collector tracks per socket, and how long one full collection takes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.fanout.rtbridge_settings")

import django

django.setup()

from benchmarks.bench_steady import build
from rtbridge.server import Server


def short(filename: str) -> str:
    for marker in ("site-packages/", "lib/python3."):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker == "lib/python3." else tail
    return os.path.relpath(filename)


async def measure(sockets: int, top: int, load: subprocess.Popen[str]) -> None:
    server = Server(port=0, broker="memory")
    await server.astart()
    gc.collect()
    tracked_before = len(gc.get_objects())
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    assert load.stdin is not None and load.stdout is not None
    load.stdin.write(f"connect rtbridge {server.port} /rtbridge/ws {sockets} bench 200 120\n")
    load.stdin.flush()
    answer = await asyncio.get_running_loop().run_in_executor(None, load.stdout.readline)
    print(f"load client: {answer.strip()}")
    await asyncio.sleep(1.0)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    by_file: collections.Counter[str] = collections.Counter()
    for stat in after.compare_to(before, "filename"):
        by_file[short(stat.traceback[0].filename)] += stat.size_diff
    total = sum(by_file.values())
    print(f"\nPython heap per socket: {total / 1024 / sockets:.2f} KiB (tracemalloc), by file:")
    for name, size in by_file.most_common(top):
        print(f"  {size / sockets:7.0f} B  {name}")
    objects = gc.get_objects()
    tracked = len(objects) - tracked_before
    kinds = collections.Counter(type(o).__name__ for o in objects)
    print(
        f"\nobjects the garbage collector tracks: {tracked / sockets:.1f} per socket; most common:"
    )
    print("  " + ", ".join(f"{name} {n}" for name, n in kinds.most_common(12)))
    del objects
    started = time.process_time()
    gc.collect()
    print(f"one full collection: {1000 * (time.process_time() - started):.1f} ms of CPU")
    load.stdin.write("close\n")
    load.stdin.flush()
    await server.astop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rtbridge-memory-") as workdir:
        client = build("loadclient", Path(workdir))
        with subprocess.Popen(
            [str(client)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        ) as load:
            asyncio.run(measure(args.sockets, args.top, load))


if __name__ == "__main__":
    main()
