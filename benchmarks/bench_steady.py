"""Steady-state fan-out: one message at a time at equal offered load; rtbridge, soketi, Channels.

Run: ``python -m benchmarks.bench_steady`` (about 25 minutes; ``--quick`` is a smoke run of a
few minutes). Needs ``redis-server``, ``gcc``, the ``bench`` extra (Channels, daphne,
channels_redis) and soketi (``cd tests/wire && npm ci``). Everything runs on 127.0.0.1 in
processes started here: ``redis-server`` and the server under test pinned to CPU 0, the
publisher and the load client pinned to CPU 1 (on a 2-core machine).

The load client is ``benchmarks/fanout/loadclient.c`` (compiled here with gcc): one epoll
loop holds every socket, walks every frame of a read with a few integer operations and stamps
each message at the read that completed it; its own CPU per delivery is in every row, so one
can check that it is well below the server's.

Rows, for every system at the same offered load (subscribers x messages/s, all subscribed to
one channel, ~100-byte JSON messages carrying ``time.time_ns()`` of their publish):

* paced: messages published one by one at a fixed rate for ``--seconds``; publish→receive
  p50/p99/max over every delivery, server CPU µs per delivery (``/proc/<pid>/stat``, all
  threads), the client's CPU µs per delivery, frames per read, and for rtbridge the loop lag
  (a probe callback every 5 ms in the server process, ``benchmarks/fanout/serve.py``: how
  late it ran; its maximum is the longest the loop was held) and the server's own counter;
* memory: server RSS with N subscribed idle sockets minus its RSS before the first, per
  socket, at 5,000, 10,000 and the most sockets this machine allows (see ``--many``), with
  a few messages then delivered to every socket;
* burst (rtbridge): 1,000 messages published flat out (``publish_many`` of 20) to 1,000
  subscribers: deliveries/s, the figure the steady-state changes must not cost;
* the kernel's floor (``benchmarks/fanout/sendfloor.c``): the CPU a C program spends per
  ``send()`` of one frame to each of N loopback sockets at the row's rate, which every
  server pays per delivery when messages arrive one at a time and cannot be coalesced.

``--variant NAME=REV[:uvloop]`` runs the rtbridge server from another commit (``git archive``
of REV into a temporary directory, imported through ``PYTHONPATH``) with the same launcher,
client and publisher; ``WORKTREE`` is this checkout as it is. The default is
``before=<merge-base with main>`` and ``after=WORKTREE``: before/after columns from the same
run. Channels cannot keep up with these loads (it delivers ~2,000/s); its paced rows publish at
the row's rate but only about ``CHANNELS_BUDGET`` deliveries, so each ends in minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.bench_fanout import Child, flush_redis, py_spy, rss_kib, stop_process
from benchmarks.common import machine, print_table, write_results
from benchmarks.fanout.client import raise_nofile_limit
from tests.services import RedisServer, free_port, redis_server_binary, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
ROWS = ((1000, 20), (1000, 100), (5000, 2), (5000, 20), (10000, 2))
QUICK_ROWS = ((1000, 20), (1000, 100))
MEMORY_SOCKETS = (5000, 10000)
#: Sockets per load-client process: each has the same open-files limit as this one.
SOCKETS_PER_CLIENT = 15_000
#: Deliveries a Channels paced row publishes (it delivers ~2,000/s, so more would take minutes).
CHANNELS_BUDGET = 20_000
BURST_SUBSCRIBERS = 1000
BURST_MESSAGES = 1000
SERVER_CPUS = {0}
LOAD_CPUS = {1}
SOKETI_APP = {"app_id": "123456", "key": "app-key", "secret": "app-secret"}


def pinned(cpus: set[int]) -> Any:
    """Return a preexec_fn that pins the child (and the threads it starts) to ``cpus``."""
    usable = cpus & os.sched_getaffinity(0) or os.sched_getaffinity(0)
    return lambda: os.sched_setaffinity(0, usable)


def cpu_split(pid: int) -> tuple[float, float]:
    """Return the user and the system CPU seconds of ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def ask(child: Child, line: str) -> dict[str, Any]:
    """Send one command line to ``child`` and return its JSON answer."""
    child.send(line)
    return child.receive()


def spawn_pinned(name: str, argv: list[str], cpus: set[int], env: dict[str, str]) -> Child:
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by Child.stop)
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**os.environ, **env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        preexec_fn=pinned(cpus),
    )
    return Child(name, process, stderr)


# Variants of the rtbridge server ----------------------------------------------------------


@dataclass
class Variant:
    """One rtbridge tree to measure: a name, the source root and the event loop."""

    name: str
    rev: str
    root: Path
    loop: str = "asyncio"


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_variant(spec: str, workdir: Path) -> Variant:
    """Parse ``NAME=REV[:uvloop]``; extract REV (unless ``WORKTREE``) under ``workdir``."""
    name, _, rest = spec.partition("=")
    rev, _, loop = rest.partition(":")
    if not name or not rev or loop not in ("", "asyncio", "uvloop"):
        raise SystemExit(f"--variant {spec!r}: give NAME=REV or NAME=REV:uvloop")
    if rev == "WORKTREE":
        return Variant(
            name, f"WORKTREE@{git('rev-parse', '--short', 'HEAD')}", ROOT, loop or "asyncio"
        )
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    target = workdir / commit[:12]
    if not target.exists():
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit], cwd=ROOT, check=True, capture_output=True
        ).stdout
        target.mkdir(parents=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
    return Variant(name, commit[:10], target, loop or "asyncio")


# Servers under test ------------------------------------------------------------------------


@dataclass
class System:
    """A server under test on a free port; ``kind`` is what the load client speaks to it."""

    name: str
    redis_url: str
    port: int = field(default_factory=free_port)
    child: Child | None = None
    process: subprocess.Popen[bytes] | None = None

    kind = "rtbridge"
    path = "/rtbridge/ws"
    publisher = "rtbridge"

    @property
    def pid(self) -> int:
        process = self.child.process if self.child else self.process
        assert process is not None
        return process.pid

    def publisher_env(self) -> dict[str, str]:
        return {"BENCH_REDIS_URL": self.redis_url}

    def start(self) -> None:
        raise NotImplementedError

    def lag(self) -> dict[str, Any] | None:
        """Return the loop lags since the previous call (rtbridge only)."""
        return None

    def collect(self) -> float | None:
        """Run a full garbage collection in the server; return its milliseconds (rtbridge)."""
        return None

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
        if self.process is not None:
            stop_process(self.process)


@dataclass
class Rtbridge(System):
    variant: Variant | None = None

    def start(self) -> None:
        assert self.variant is not None
        argv = [sys.executable, str(ROOT / "benchmarks" / "fanout" / "serve.py")]
        argv += ["--port", str(self.port), "--redis-url", self.redis_url]
        argv += ["--loop", self.variant.loop]
        env = {"PYTHONPATH": str(self.variant.root), "BENCH_REDIS_URL": self.redis_url}
        self.child = spawn_pinned(self.name, argv, SERVER_CPUS, env)
        ready = self.child.receive()
        if not ready.get("ready"):
            raise RuntimeError(f"{self.name} did not start: {ready}")

    def lag(self) -> dict[str, Any] | None:
        assert self.child is not None
        return ask(self.child, "lag")

    def collect(self) -> float | None:
        assert self.child is not None
        milliseconds: float = ask(self.child, "collect")["ms"]
        return milliseconds


@dataclass
class Soketi(System):
    kind = "pusher"
    path = f"/app/{SOKETI_APP['key']}?protocol=7&client=bench&version=8.4.0"
    publisher = "pusher"
    metrics_port: int = field(default_factory=free_port)

    def publisher_env(self) -> dict[str, str]:
        return {"BENCH_SOKETI": f"127.0.0.1:{self.port}"}

    def start(self) -> None:
        server_js = ROOT / "tests" / "wire" / "node_modules" / "@soketi" / "soketi" / "bin"
        node = shutil.which("node")
        if node is None or not (server_js / "server.js").exists():
            raise RuntimeError(
                "soketi needs node and tests/wire/node_modules: cd tests/wire && npm ci"
            )
        env = {
            "SOKETI_HOST": "127.0.0.1",
            "SOKETI_PORT": str(self.port),
            "SOKETI_METRICS_ENABLED": "false",
            "SOKETI_METRICS_SERVER_PORT": str(self.metrics_port),
            "SOKETI_DEFAULT_APP_ID": SOKETI_APP["app_id"],
            "SOKETI_DEFAULT_APP_KEY": SOKETI_APP["key"],
            "SOKETI_DEFAULT_APP_SECRET": SOKETI_APP["secret"],
            "SOKETI_SHUTDOWN_GRACE_PERIOD": "100",
        }
        self.process = subprocess.Popen(
            [node, str(server_js / "server.js"), "start"],
            cwd=ROOT / "tests" / "wire",
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=pinned(SERVER_CPUS),
        )
        wait_for_port(self.port, timeout=30)


@dataclass
class Channels(System):
    kind = "channels"
    path = "/ws/"
    publisher = "channels"

    def start(self) -> None:
        argv = [sys.executable, "-m", "daphne", "-v", "0", "-b", "127.0.0.1"]
        argv += ["-p", str(self.port), "benchmarks.fanout.channels_asgi:application"]
        env = {
            "BENCH_REDIS_URL": self.redis_url,
            "DJANGO_SETTINGS_MODULE": "benchmarks.fanout.channels_settings",
        }
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=pinned(SERVER_CPUS),
        )
        wait_for_port(self.port, timeout=30)


# The load client ---------------------------------------------------------------------------


def build(name: str, workdir: Path) -> Path:
    """Compile benchmarks/fanout/NAME.c with gcc; return the binary."""
    source = ROOT / "benchmarks" / "fanout" / f"{name}.c"
    binary = workdir / name
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise SystemExit("the benchmark's C programs need gcc (apt-get install gcc)")
    subprocess.run([compiler, "-O2", "-o", str(binary), str(source)], check=True)
    return binary


FLOOR = "C send() floor"


def send_floor(binary: Path, sockets: int, rate: float, seconds: float) -> dict[str, Any]:
    """Return the kernel's CPU per send() of one frame to each socket at ``rate`` rounds/s."""
    rounds = max(3, min(300, round(rate * seconds)))
    cpus = [str(min(SERVER_CPUS)), str(min(LOAD_CPUS))]
    answer = subprocess.run(
        [str(binary), str(sockets), str(rounds), str(rate), *cpus],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(answer)
    return {
        "table": "paced",
        "system": FLOOR,
        "subscribers": sockets,
        "rate": rate,
        "offered": round(rate * sockets),
        "server_us_per_delivery": result["us_per_send"],
        "server_user_us": result["user_us"],
        "server_system_us": result["system_us"],
        "sends": result["sends"],
        "lost": result["failed"] + (0 if result["reader_ok"] else 1),
    }


@dataclass
class Load:
    """The load-client processes holding the sockets of one case."""

    clients: list[Child]
    shares: list[int]

    @classmethod
    def start(cls, binary: Path, sockets: int) -> Load:
        count = max(1, -(-sockets // SOCKETS_PER_CLIENT))
        shares = [sockets // count + (i < sockets % count) for i in range(count)]
        clients = [
            spawn_pinned(f"load client {i}", [str(binary)], LOAD_CPUS, {}) for i in range(count)
        ]
        return cls(clients, shares)

    def connect(self, system: System, concurrency: int) -> dict[str, Any]:
        for client, share in zip(self.clients, self.shares, strict=True):
            client.send(
                f"connect {system.kind} {system.port} {system.path} {share} bench "
                f"{max(1, concurrency // len(self.clients))} 600"
            )
        answers = [client.receive() for client in self.clients]
        return {
            "ready": sum(a["ready"] for a in answers),
            "error": next((a["error"] for a in answers if a["error"]), None),
            "seconds": max(a["seconds"] for a in answers),
        }

    def arm(self) -> None:
        for client in self.clients:
            ask(client, "arm")

    def collect(self, per_socket: int, quiet: float, deadline: float) -> list[dict[str, Any]]:
        for client, share in zip(self.clients, self.shares, strict=True):
            client.send(f"collect {share * per_socket} {quiet} {deadline}")
        return [client.receive() for client in self.clients]

    def stop(self) -> None:
        for client in self.clients:
            with contextlib.suppress(Exception):
                ask(client, "close")
            client.stop()


# Phases ------------------------------------------------------------------------------------


def publish_and_collect(
    system: System,
    load: Load,
    count: int,
    rate: float,
    *,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Publish ``count`` messages at ``rate``/s (0: flat out); return what the clients saw."""
    argv = [sys.executable, "-m", "benchmarks.fanout.publisher", "--system", system.publisher]
    argv += ["--count", str(count), "--rate", str(rate), "--batch", "1" if rate else "20"]
    publisher = spawn_pinned("publisher", argv, LOAD_CPUS, system.publisher_env())
    spy = None
    try:
        if not publisher.receive().get("ready"):
            raise RuntimeError("the publisher did not start")
        load.arm()
        system.lag()  # start the lag window now
        if profile is not None:
            spy_argv = [py_spy(), "record", "--pid", str(system.pid), "--rate", "200"]
            spy_argv += ["--format", "raw", "--output", str(profile), "--nonblocking"]
            spy = subprocess.Popen(spy_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        user_before, system_before = cpu_split(system.pid)
        publisher.send("go")
        seconds = count / rate if rate else 0.0
        results = load.collect(count, quiet=10.0, deadline=seconds + 120.0)
        user_after, system_after = cpu_split(system.pid)
        server_user, server_system = user_after - user_before, system_after - system_before
        server_cpu = server_user + server_system
        done = publisher.receive()
        lag = system.lag()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
    finally:
        publisher.stop()
        if spy is not None and spy.poll() is None:
            spy.kill()
    received = sum(r["received"] for r in results)
    # Each client reports the CPU time it used since arm.
    client_cpu = sum(r["cpu"] for r in results)
    # One client per paced row (SOCKETS_PER_CLIENT): its percentiles are over every delivery.
    latency = results[0]["lat_ms"]
    last = max((r["last_ns"] for r in results if r["received"]), default=done["start_ns"])
    wall = max(1e-9, (last - done["start_ns"]) / 1e9)
    expected = count * sum(load.shares)
    closes: Counter[str] = Counter()
    for r in results:
        closes.update(r["close_codes"])
    return {
        "published": done["published"],
        "publish_errors": done["errors"],
        "achieved_msgs_per_s": round(
            done["published"] / max(1e-9, (done["end_ns"] - done["start_ns"]) / 1e9), 1
        )
        if rate
        else None,
        "publisher_behind_ms": done.get("max_behind_ms"),
        "expected": expected,
        "received": received,
        "lost": expected - received,
        "min_per_socket": min(r["min_per_socket"] for r in results),
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "max_ms": latency["max"],
        "deliveries_per_s": round(received / wall),
        "server_us_per_delivery": round(1e6 * server_cpu / received, 2) if received else None,
        # User time is the server's own code (Python); system time is mostly the kernel's
        # socket writes, whose floor the C send() row measures.
        "server_user_us": round(1e6 * server_user / received, 2) if received else None,
        "server_system_us": round(1e6 * server_system / received, 2) if received else None,
        "server_cpu_pct": round(100 * server_cpu / wall),
        "client_us_per_delivery": round(1e6 * client_cpu / received, 2) if received else None,
        "frames_per_read": round(received / max(1, sum(r["reads"] for r in results)), 2),
        "lag_p99_ms": lag["probe"].get("p99") if lag else None,
        "lag_max_ms": lag["probe"].get("max") if lag else None,
        "server_lag_over_5ms": (lag.get("server") or {}).get("over_5ms") if lag else None,
        "gc_full_n": lag["gc"]["gen2"]["n"] if lag else None,
        "gc_max_ms": max(g["max_ms"] for g in lag["gc"].values()) if lag else None,
        # [name, count, longest ms] of the callbacks over 4 ms (asyncio loops only).
        "slow_callbacks": lag.get("slow_callbacks") if lag else None,
        "closed": sum(r["closed"] for r in results),
        "close_codes": " ".join(f"{code}x{n}" for code, n in sorted(closes.items())),
        "error": done.get("error"),
    }


def run_group(
    system: System,
    label: str,
    sockets: int,
    rates: list[float],
    *,
    binary: Path,
    seconds: float,
    burst: bool,
    profile_dir: Path | None,
) -> list[dict[str, Any]]:
    """Start ``system``, hold ``sockets`` subscribed sockets, run its rows; return them."""
    flush_redis(system.redis_url)
    system.start()
    load = Load.start(binary, sockets)
    rows: list[dict[str, Any]] = []
    base = {"system": label, "subscribers": sockets}
    try:
        time.sleep(1.0)
        baseline = rss_kib(system.pid)
        # channels_redis (redis-py 8) refuses handshakes when many group_adds run at once.
        concurrency = 32 if system.kind == "channels" else 200
        connected = load.connect(system, concurrency)
        if connected["ready"] != sockets:
            raise RuntimeError(
                f"{label}: {connected['ready']} of {sockets} sockets ready ({connected['error']})"
            )
        time.sleep(2.0)
        loaded = rss_kib(system.pid)
        # Objects made while sockets connect are walked by a full garbage collection soon
        # after (the node runs one once they are a quarter of what it holds). Run it now,
        # timed, so the rows measure the steady state; every tree under test gets the same.
        collected = system.collect()
        rows.append(
            {
                "table": "memory",
                **base,
                "connect_s": connected["seconds"],
                "rss_mib": round(loaded / 1024, 1),
                "kib_per_conn": round((loaded - baseline) / sockets, 2),
                "gc_after_connect_ms": collected,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        for rate in rates:
            count = max(3, round(rate * seconds))
            if system.kind == "channels":
                count = max(3, min(count, CHANNELS_BUDGET // sockets))
            profile = None
            if profile_dir is not None and isinstance(system, Rtbridge):
                profile = profile_dir / f"{label}-{sockets}x{rate:g}.raw.txt"
            phase = publish_and_collect(system, load, count, rate, profile=profile)
            rows.append(
                {"table": "paced", **base, "rate": rate, "offered": round(rate * sockets), **phase}
            )
            print(json.dumps(rows[-1]), flush=True)
        if burst:
            profile = None
            if profile_dir is not None and isinstance(system, Rtbridge):
                profile = profile_dir / f"{label}-{sockets}-burst.raw.txt"
            phase = publish_and_collect(system, load, BURST_MESSAGES, 0.0, profile=profile)
            rows.append({"table": "burst", **base, **phase})
            print(json.dumps(rows[-1]), flush=True)
        if not rates:
            # Memory-only cases still check that every socket gets what is published.
            phase = publish_and_collect(system, load, 3, 0.0)
            rows[0]["delivered_all"] = phase["min_per_socket"] == 3 and phase["lost"] == 0
            rows[0]["deliveries"] = phase["received"]
    finally:
        load.stop()
        system.stop()
    return rows


# Report ------------------------------------------------------------------------------------


def server_cpu_cell(row: dict[str, Any]) -> str:
    """Return ``total (user + system)`` µs per delivery, or the total alone (the C floor)."""
    total = row["server_us_per_delivery"]
    if row.get("server_user_us") is None:
        return f"{total}"
    return f"{total} ({row['server_user_us']} + {row['server_system_us']})"


def markdown(rows: list[dict[str, Any]], labels: list[str]) -> str:
    """Return the RESULTS.md tables: one column group per system, rows by load."""
    paced = {(r["system"], r["subscribers"], r["rate"]): r for r in rows if r["table"] == "paced"}
    loads = sorted({(n, rate) for _, n, rate in paced}, key=lambda k: (k[0], k[1]))
    out = ["| subscribers × msg/s | metric | " + " | ".join(labels) + " |"]  # noqa: RUF001
    out.append("|---|---|" + "---|" * len(labels))
    metrics = [
        (
            "p50 / p99 / max ms",
            lambda r: f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} / {r['max_ms']:.1f}",
        ),
        ("server µs / delivery (user + system)", server_cpu_cell),
        ("client µs / delivery", lambda r: f"{r['client_us_per_delivery']}"),
        (
            "loop lag p99 / max ms",
            lambda r: (
                "" if r["lag_max_ms"] is None else f"{r['lag_p99_ms']:.1f} / {r['lag_max_ms']:.1f}"
            ),
        ),
        ("published msg/s; lost", lambda r: f"{r['achieved_msgs_per_s']}; {r['lost']}"),
    ]
    for n, rate in loads:
        for name, cell in metrics:
            cells = []
            for label in labels:
                row = paced.get((label, n, rate))
                try:
                    cells.append(cell(row) if row else "")
                except (TypeError, KeyError):
                    cells.append("")
            out.append(f"| {n:,} × {rate:g} | {name} | " + " | ".join(cells) + " |")  # noqa: RUF001
    memory = {(r["system"], r["subscribers"]): r for r in rows if r["table"] == "memory"}
    counts = sorted({n for _, n in memory})
    out.append("")
    out.append("| KiB per idle subscribed connection | " + " | ".join(labels) + " |")
    out.append("|---|" + "---|" * len(labels))
    for n in counts:
        cells = [
            f"{memory[(label, n)]['kib_per_conn']}" if (label, n) in memory else ""
            for label in labels
        ]
        out.append(f"| {n:,} | " + " | ".join(cells) + " |")
    bursts = [r for r in rows if r["table"] == "burst"]
    if bursts:
        out.append("")
        out.append("| burst, 1,000 subscribers | deliveries/s | server µs / delivery | lost |")
        out.append("|---|---|---|---|")
        for r in bursts:
            cells = [f"{r['deliveries_per_s']:,}", str(r["server_us_per_delivery"]), str(r["lost"])]
            out.append(f"| {r['system']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Steady-state fan-out: rtbridge, soketi, Channels."
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few minutes")
    parser.add_argument("--rows", default=None, help="e.g. 1000x20,5000x2 (default: the five)")
    parser.add_argument("--seconds", type=float, default=None, help="publishing time per row (30)")
    parser.add_argument("--systems", default="rtbridge,soketi,channels")
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        metavar="NAME=REV[:uvloop]",
        help="an rtbridge tree to measure (REV a commit, or WORKTREE); repeatable",
    )
    parser.add_argument(
        "--many",
        type=int,
        default=None,
        help="also measure memory with this many sockets (default: as many as the open-files "
        "limit allows)",
    )
    parser.add_argument("--profile", type=Path, default=None, help="py-spy raw stacks into DIR")
    parser.add_argument("--results", default=None, help="benchmarks/results/NAME.json")
    args = parser.parse_args()
    quick = args.quick
    seconds = args.seconds or (5.0 if quick else 30.0)
    if args.rows:
        rows_wanted = [tuple(int(x) for x in r.split("x")) for r in args.rows.split(",")]
    else:
        rows_wanted = list(QUICK_ROWS if quick else ROWS)
    systems = [s for s in args.systems.split(",") if s]
    limit = raise_nofile_limit()
    # Each server process has this limit too (it cannot be raised without CAP_SYS_RESOURCE):
    # the most sockets one server can hold here, with room for its own files.
    many = (
        args.many
        if args.many is not None
        else (0 if quick else max(0, (limit - 500) // 1000 * 1000))
    )
    workdir = Path(tempfile.mkdtemp(prefix="rtbridge-steady-"))
    specs = args.variant or [f"before={git('merge-base', 'HEAD', 'main')}", "after=WORKTREE"]
    variants = [make_variant(spec, workdir) for spec in specs] if "rtbridge" in systems else []
    binary = build("loadclient", workdir)
    floor = build("sendfloor", workdir)
    redis_binary = redis_server_binary()
    if redis_binary is None:
        print("redis-server not found (apt-get install redis-server)", file=sys.stderr)
        return 2
    redis = RedisServer(binary=redis_binary)
    redis.start()
    assert redis.process is not None
    os.sched_setaffinity(
        redis.process.pid, SERVER_CPUS & os.sched_getaffinity(0) or os.sched_getaffinity(0)
    )
    load_start = os.getloadavg()
    command = "python -m benchmarks.bench_steady" + "".join(f" {a}" for a in sys.argv[1:])
    print(
        f"{command}: {os.cpu_count()} cores, load {load_start[0]:.2f}, open-files limit {limit}; "
        + ", ".join(f"{v.name}={v.rev}{'+uvloop' if v.loop == 'uvloop' else ''}" for v in variants),
        flush=True,
    )

    def cases() -> list[tuple[System, str]]:
        out: list[tuple[System, str]] = []
        for name in systems:
            if name == "rtbridge":
                out += [
                    (Rtbridge(v.name, redis.url, variant=v), f"rtbridge {v.name}") for v in variants
                ]
            elif name == "soketi":
                out.append((Soketi("soketi", redis.url), "soketi"))
            elif name == "channels":
                out.append((Channels("channels", redis.url), "channels"))
            else:
                raise SystemExit(f"--systems: unknown {name!r}; choose rtbridge, soketi, channels")
        return out

    labels = [label for _, label in cases()] + [FLOOR]
    rows: list[dict[str, Any]] = []
    groups = sorted({n for n, _ in rows_wanted} | ({*MEMORY_SOCKETS} if not quick else set()))
    if many:
        groups.append(many)
    results = args.results or ("steady-quick" if quick else "steady")

    def save() -> Path:
        # After every case, so a run cut short keeps what it measured.
        facts = {
            "table": "run",
            **machine(),
            "variants": {
                v.name: v.rev + ("+uvloop" if v.loop == "uvloop" else "") for v in variants
            },
            "load1_start": round(load_start[0], 2),
            "load1_now": round(os.getloadavg()[0], 2),
            "open_files_limit": limit,
        }
        return write_results(results, command, [facts, *rows])

    try:
        for sockets in groups:
            rates = [float(rate) for n, rate in rows_wanted if n == sockets]
            for rate in rates:
                rows.append(send_floor(floor, sockets, rate, seconds))
                print(json.dumps(rows[-1]), flush=True)
            for system, label in cases():
                if system.kind == "channels" and not rates and sockets > 10_000:
                    continue  # connecting that many Channels sockets takes many minutes
                try:
                    rows += run_group(
                        system,
                        label,
                        sockets,
                        rates,
                        binary=binary,
                        seconds=seconds,
                        burst=sockets == BURST_SUBSCRIBERS and isinstance(system, Rtbridge),
                        profile_dir=args.profile,
                    )
                except Exception as exc:  # one system failing must not lose the others' rows
                    rows.append(
                        {
                            "table": "error",
                            "system": label,
                            "subscribers": sockets,
                            "error": str(exc),
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
                save()
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    load_end = os.getloadavg()
    path = save()
    for table in ("paced", "memory", "burst", "error"):
        selected = [r for r in rows if r["table"] == table]
        keys = list(dict.fromkeys(k for r in selected for k in r if k != "table"))
        print_table(table, [{k: r.get(k, "") for k in keys} for r in selected])
    print()
    print(markdown(rows, labels))
    print(f"\nload average: start {load_start[0]:.2f}, end {load_end[0]:.2f}")
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
