"""Run every benchmark: ``python -m benchmarks`` (or ``make bench``)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

# Each benchmark runs in its own process: they configure Django differently.
BENCHMARKS = [
    "benchmarks.bench_publish",
    "benchmarks.bench_hosted",
    "benchmarks.bench_fanout",
    "benchmarks.bench_continuity",
    "benchmarks.bench_operators",
]


def main() -> int:
    status = 0
    for name in BENCHMARKS:
        importlib.util.find_spec(name)  # fail early on a typo
        print(f"\n=== {name}")
        status |= subprocess.call([sys.executable, "-m", name])
    if os.environ.get("BENCH_DB") != "postgres":
        print("\n=== benchmarks.bench_publish on PostgreSQL")
        env = {**os.environ, "BENCH_DB": "postgres"}
        status |= subprocess.call([sys.executable, "-m", "benchmarks.bench_publish"], env=env)
    return status


if __name__ == "__main__":
    sys.exit(main())
