"""Summarize a py-spy ``--format raw`` profile: the top functions by own and by total samples.

``python -m benchmarks.profiles.summarize PROFILE.raw.txt [--top 25]`` prints two tables
(percentages of the samples where the server was not idle) and the heaviest call paths below
the event loop, short enough to commit next to the SVGs one would not.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

#: Frames of the event loop itself, cut from call paths so each path starts at a callback.
_LOOP_FRAMES = re.compile(
    r"^(<module>|main|run|Runner\.run|BaseEventLoop\.(run_until_complete|run_forever|_run_once)|"
    r"Handle\._run|serve)\b"
)
_LINE = re.compile(r" \(([^)]*?):\d+\)$")


def function_name(frame: str) -> str:
    """Return ``function (file)`` of a py-spy frame ``function (file:line)``."""
    return _LINE.sub(lambda m: f" ({m.group(1)})", frame)


def summarize(path: Path, top: int) -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    paths: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [function_name(f) for f in stack.split(";")]
        samples += count
        own[frames[-1]] += count
        for name in set(frames):
            total[name] += count
        below = [f for f in frames if not _LOOP_FRAMES.match(f)]
        paths[" > ".join(below[:4]) if below else "(event loop)"] += count
    if not samples:
        return f"{path.name}: no samples\n"
    lines = [f"{path.name}: {samples} samples (busy, not idle)", "", "own time:"]
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "total time (the function and what it calls):"]
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in total.most_common(top)]
    lines += ["", "callbacks (first frames below the event loop):"]
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in paths.most_common(top // 2)]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for path in args.profiles:
        sys.stdout.write(summarize(path, args.top) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
