"""Fan-out: the rtbridge server (Redis broker) side by side with Django Channels (daphne).

Run: ``python -m benchmarks.bench_fanout`` (about 10 minutes) or ``--quick`` (under a
minute, a smoke run). Needs ``redis-server`` and ``pip install channels daphne
channels_redis``. Everything runs on 127.0.0.1 in separate processes started here: one
``redis-server``, the server under test, a publisher and ``--clients`` load-client processes
(benchmarks/fanout/client.py) holding the sockets, all subscribed to one channel / group.

For each system and subscriber count it reports:

* memory per idle connection: server RSS with N subscribed sockets minus its RSS before any;
* peak: ``count`` messages of ~100 bytes published flat out; deliveries/s = message frames
  received by all sockets / (last arrival - first publish); lost = expected - received;
* latency: publish→receive p50/p99 at half the peak rate (each payload carries
  ``time.time_ns()`` of its publish; one machine, one clock);
* CPU seconds of the server and the load clients in the peak phase, so one can see who
  was the bottleneck on a 2-core machine.

Systems: ``rtbridge`` (``rtbridge serve`` + ``RedisBackend``), ``channels`` (daphne +
channels_redis with its default ``capacity=100``, which silently drops group messages) and
``channels-cap`` (capacity 100,000). Finally one rtbridge process holds 10,000 sockets.
Targets (issue 3): ≥ 10x Channels' deliveries/s at 1,000 subscribers; zero messages lost;
p99 ≤ 50 ms at 1,000 subscribers at half the peak rate; ≤ 30 KB per idle connection;
10,000 concurrent connections on one process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import redis

from benchmarks.common import print_table, write_results
from benchmarks.fanout.client import raise_nofile_limit
from tests.services import RedisServer, free_port, redis_server_binary, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
CHANNELS_CAPACITY = 100_000
SYSTEMS = ("rtbridge", "channels", "channels-cap")
#: Also accepted by --systems: rtbridge with RTBRIDGE_HISTORY = None (server and publisher),
#: to see what keeping history costs the fan-out (benchmarks.bench_continuity runs it).
EXTRA_SYSTEMS = ("rtbridge-nohistory",)
# rtbridge's flat-out publisher sends this many messages per round trip (publish_many), so
# the publisher is not what limits the peak; Channels has no batch API and needs none here.
PUBLISH_BATCH = 20
# Messages per peak run: a budget of deliveries (messages x subscribers) per system, so each
# peak takes seconds: Channels delivers about a hundredth of what rtbridge does. Throughput is
# a rate, so the rows stay comparable; the counts are in the table.
PEAK_DELIVERIES = {
    "rtbridge": 1_000_000,
    "rtbridge-nohistory": 1_000_000,
    "channels": 25_000,
    "channels-cap": 25_000,
}
QUICK_PEAK_DELIVERIES = {
    "rtbridge": 100_000,
    "rtbridge-nohistory": 100_000,
    "channels": 10_000,
    "channels-cap": 10_000,
}
# rtbridge's per-socket outbound buffer is 1 MiB: a burst must fit in it (and the kernel's).
MAX_PEAK_MESSAGES = 5000
MAX_LATENCY_SECONDS = 20.0
# A second latency run at this fixed rate (messages/s) when half the peak is well above it.
SLOW_RATE = 10.0


def peak_messages(system: str, subscribers: int, quick: bool) -> int:
    """Return how many messages the peak phase publishes."""
    budget = (QUICK_PEAK_DELIVERIES if quick else PEAK_DELIVERIES)[system]
    return max(5, min(MAX_PEAK_MESSAGES, budget // subscribers))


# Processes ---------------------------------------------------------------------------------


@dataclass
class Child:
    """A child process that speaks JSON lines on stdin/stdout."""

    name: str
    process: subprocess.Popen[bytes]
    stderr: IO[bytes]

    def send(self, message: dict[str, Any] | str) -> None:
        assert self.process.stdin is not None
        line = message if isinstance(message, str) else json.dumps(message)
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.stderr.seek(0)
            tail = self.stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited ({self.process.poll()}):\n{tail}")
        result: dict[str, Any] = json.loads(line)
        return result

    def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send(message)
        return self.receive()

    def stop(self) -> None:
        stop_process(self.process)
        self.stderr.close()


def spawn(name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by Child.stop)
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    return Child(name, process, stderr)


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def rss_kib(pid: int) -> int:
    """Return the resident set size of ``pid`` in KiB (VmRSS)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_of(pid: int) -> float:
    """Return user + system CPU seconds of ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ServerUnderTest:
    """The server process of one system on a free port."""

    system: str
    redis_url: str
    port: int = field(default_factory=free_port)
    #: A script to run instead of ``-m rtbridge`` (it must accept the same arguments), to
    #: compare a change to the server before it lands.
    launcher: str | None = None
    #: Keep the server's output in this file (otherwise it is shown only when it fails).
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def path(self) -> str:
        return "/rtbridge/ws" if self.kind == "rtbridge" else "/ws/"

    @property
    def kind(self) -> str:
        return "rtbridge" if self.system.startswith("rtbridge") else "channels"

    def env(self) -> dict[str, str]:
        env = {"BENCH_REDIS_URL": self.redis_url}
        if self.system == "channels-cap":
            env["BENCH_CHANNELS_CAPACITY"] = str(CHANNELS_CAPACITY)
        if self.system == "rtbridge-nohistory":
            env["BENCH_RTBRIDGE_HISTORY"] = "null"
        return env

    def start(self) -> None:
        if self.kind == "rtbridge":
            launcher = [self.launcher] if self.launcher else ["-m", "rtbridge"]
            argv = [sys.executable, *launcher, "serve", "-v", "0"]
            argv += ["--settings", "benchmarks.fanout.rtbridge_settings"]
            argv += ["--port", str(self.port), "--redis-url", self.redis_url]
            env = self.env()
        else:
            argv = [sys.executable, "-m", "daphne", "-v", "0"]
            argv += ["-b", "127.0.0.1", "-p", str(self.port)]
            argv += ["benchmarks.fanout.channels_asgi:application"]
            env = {**self.env(), "DJANGO_SETTINGS_MODULE": "benchmarks.fanout.channels_settings"}
        if self.log_path is not None:
            self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed by stop)
        else:
            self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop)
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
        )
        try:
            wait_for_port(self.port, timeout=20)
        except TimeoutError:
            raise RuntimeError(f"{self.system} did not start:\n{self.log_tail()}") from None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self) -> str:
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        if self.log is not None:
            self.log.close()


# Measurements ------------------------------------------------------------------------------


def percentile(sorted_values: list[int], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return float(sorted_values[index])


@dataclass
class Phase:
    """The outcome of one publish phase."""

    published: int
    expected: int
    received: int
    reads: int
    seconds: float
    latencies_us: list[int]
    server_cpu: float
    client_cpu: float
    publisher_cpu: float
    publish_seconds: float
    closed: int
    close_codes: dict[str, int]

    @property
    def lost(self) -> int:
        return self.expected - self.received

    @property
    def deliveries_per_s(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, fraction: float) -> float:
        return percentile(sorted(self.latencies_us), fraction) / 1000


def run_phase(
    server: ServerUnderTest,
    clients: list[Child],
    sockets: int,
    count: int,
    rate: float,
    profile: Path | None = None,
) -> Phase:
    """Publish ``count`` messages (at ``rate``/s, 0 = flat out) and collect every delivery."""
    system = server.kind
    batch = PUBLISH_BATCH if rate == 0 else 1
    argv = [sys.executable, "-m", "benchmarks.fanout.publisher", "--system", system]
    argv += ["--count", str(count), "--rate", str(rate), "--batch", str(batch)]
    publisher = spawn("publisher", argv, env=server.env())
    spy = None
    try:
        assert publisher.receive().get("ready")
        per_client = [
            sockets // len(clients) + (i < sockets % len(clients)) for i in range(len(clients))
        ]
        expected = [n * count for n in per_client]
        client_cpu = 0.0
        for client, total in zip(clients, expected, strict=True):
            client.send({"cmd": "arm", "sample_every": max(1, total // 20_000)})
        for client in clients:
            client_cpu -= client.receive()["cpu"]
        if profile is not None:
            spy_argv = [py_spy(), "record", "--pid", str(server.pid), "--rate", "250"]
            spy_argv += ["--format", "raw", "--output", str(profile), "--nonblocking"]
            spy = subprocess.Popen(
                spy_argv,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        server_cpu = cpu_of(server.pid)
        publisher.send("go")
        deadline = 30 + count / max(rate, 1) if rate else 180
        for client, total in zip(clients, expected, strict=True):
            # Count missing frames as lost after this long without any: long enough for a
            # server that is merely slow or short of CPU (Channels takes seconds to reach
            # thousands of sockets) to catch up. It only costs time when frames are lost.
            quiet = max(10.0, 0.003 * sockets)
            client.send({"cmd": "collect", "expected": total, "quiet": quiet, "deadline": deadline})
        results = [client.receive() for client in clients]
        server_cpu = cpu_of(server.pid) - server_cpu
        done = publisher.receive()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
    finally:
        publisher.stop()
        if spy is not None and spy.poll() is None:
            spy.kill()
    last = max((r["last_ns"] for r in results if r["received"]), default=done["start_ns"])
    return Phase(
        published=done["published"],
        expected=sum(expected),
        received=sum(r["received"] for r in results),
        reads=sum(r["reads"] for r in results),
        seconds=(last - done["start_ns"]) / 1e9,
        latencies_us=[v for r in results for v in r["latencies_us"]],
        server_cpu=server_cpu,
        client_cpu=client_cpu + sum(r["cpu"] for r in results),
        publisher_cpu=done["cpu"],
        publish_seconds=(done["end_ns"] - done["start_ns"]) / 1e9,
        closed=sum(r["closed"] for r in results),
        close_codes={k: v for r in results for k, v in r["close_codes"].items()},
    )


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.path.exists(found):
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    return found


def start_clients(count: int) -> list[Child]:
    return [
        spawn(f"client {i}", [sys.executable, "-m", "benchmarks.fanout.client"])
        for i in range(count)
    ]


def connect(server: ServerUnderTest, clients: list[Child], sockets: int) -> dict[str, Any]:
    """Open ``sockets`` subscribed sockets spread over ``clients``; return the totals."""
    for i, client in enumerate(clients):
        share = sockets // len(clients) + (i < sockets % len(clients))
        client.send(
            {
                "cmd": "connect",
                "kind": server.kind,
                "port": server.port,
                "path": server.path,
                "count": share,
                "channel": "bench",
                # channels_redis on redis-py 8 has a pool of 100 connections that raises
                # (HTTP 500 at the handshake) when more group_adds run at once.
                "concurrency": max(1, 64 // len(clients)),
            }
        )
    answers = [client.receive() for client in clients]
    return {
        "ready": sum(a["ready"] for a in answers),
        "failed": sum(a["failed"] for a in answers),
        "error": next((a["error"] for a in answers if a["error"]), None),
        "seconds": max(a["seconds"] for a in answers),
    }


def flush_redis(url: str) -> None:
    # Channels keeps group members in Redis for a day; a dead server's sockets must not
    # stay in the group of the next run.
    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()


def run_case(
    system: str,
    subscribers: int,
    redis_url: str,
    *,
    client_processes: int,
    quick: bool,
    latency_seconds: float,
    profile_dir: Path | None,
    launcher: str | None = None,
    logs: Path | None = None,
    peak_only: bool = False,
    peak_count: int | None = None,
) -> dict[str, Any]:
    flush_redis(redis_url)
    load = os.getloadavg()[0]
    log_path = logs / f"{system}-{subscribers}.log" if logs is not None else None
    server = ServerUnderTest(system, redis_url, launcher=launcher, log_path=log_path)
    server.start()
    clients = start_clients(client_processes)
    try:
        time.sleep(1.0)
        baseline = rss_kib(server.pid)
        connected = connect(server, clients, subscribers)
        if connected["ready"] != subscribers:
            raise RuntimeError(
                f"{system}: only {connected['ready']} of {subscribers} sockets ready "
                f"({connected['failed']} failed, e.g. {connected['error']})\n{server.log_tail()}"
            )
        time.sleep(1.0)
        loaded = rss_kib(server.pid)
        count = peak_count or peak_messages(system, subscribers, quick)
        profile = None
        if profile_dir is not None and system == "rtbridge":
            profile = profile_dir / f"rtbridge-{subscribers}-peak.txt"
        peak = run_phase(server, clients, subscribers, count, 0.0, profile)
        peak_rate = peak.deliveries_per_s / subscribers
        if peak_only:
            return {
                "system": system,
                "subscribers": subscribers,
                "peak_msgs": count,
                "deliveries_per_s": round(peak.deliveries_per_s),
                "peak_lost": peak.lost,
                "peak_server_cpu_pct": round(100 * peak.server_cpu / (peak.seconds or 1.0)),
                "deliveries_per_server_cpu_s": round(peak.received / peak.server_cpu)
                if peak.server_cpu
                else None,
                "publisher_cpu_s": round(peak.publisher_cpu, 2),
                "publish_s": round(peak.publish_seconds, 2),
                "load1": round(load, 2),
            }
        # Half the peak rate for latency_seconds, but at least 3 messages in at most
        # MAX_LATENCY_SECONDS (Channels' peak at 5,000 sockets is a fraction of a message/s).
        rate = peak_rate / 2
        latency_count = max(3, int(rate * latency_seconds))
        rate = max(rate, latency_count / MAX_LATENCY_SECONDS)
        latency = run_phase(
            server,
            clients,
            subscribers,
            latency_count,
            rate,
            profile.with_name(f"rtbridge-{subscribers}-latency.txt") if profile else None,
        )
        # The same at a low, fixed rate: the latency floor when nobody is short of CPU.
        slow = None
        if rate > 2 * SLOW_RATE:
            slow_count = int(SLOW_RATE * latency_seconds)
            slow = run_phase(server, clients, subscribers, slow_count, SLOW_RATE)
    finally:
        for client in clients:
            # A client that died already raised with its stderr; nothing to close then.
            with contextlib.suppress(Exception):
                client.ask({"cmd": "close"})
            client.stop()
        server.stop()
    wall = peak.seconds or 1.0
    last = slow or latency
    return {
        "system": system,
        "subscribers": subscribers,
        "connect_s": connected["seconds"],
        "kib_per_conn": round((loaded - baseline) / subscribers, 1),
        "peak_msgs": count,
        "deliveries_per_s": round(peak.deliveries_per_s),
        "peak_msgs_per_s": round(peak_rate, 1),
        "peak_lost": peak.lost,
        "peak_server_cpu_pct": round(100 * peak.server_cpu / wall),
        "peak_client_cpu_pct": round(100 * peak.client_cpu / wall),
        "deliveries_per_server_cpu_s": round(peak.received / peak.server_cpu)
        if peak.server_cpu
        else None,
        "frames_per_read": round(peak.received / peak.reads, 1) if peak.reads else None,
        "deliveries_per_client_cpu_s": round(peak.received / peak.client_cpu)
        if peak.client_cpu
        else None,
        "publish_s": round(peak.publish_seconds, 2),
        "lat_rate_msgs_per_s": round(rate, 1),
        "lat_p50_ms": round(latency.latency_ms(0.50), 2),
        "lat_p99_ms": round(latency.latency_ms(0.99), 2),
        "lat_max_ms": round(max(latency.latencies_us, default=0) / 1000, 2),
        "lat_server_cpu_pct": round(100 * latency.server_cpu / (latency.seconds or 1.0)),
        "lat_client_cpu_pct": round(100 * latency.client_cpu / (latency.seconds or 1.0)),
        "lat_frames_per_read": round(latency.received / latency.reads, 1)
        if latency.reads
        else None,
        f"lat{SLOW_RATE:g}_p50_ms": round(slow.latency_ms(0.50), 2) if slow else None,
        f"lat{SLOW_RATE:g}_p99_ms": round(slow.latency_ms(0.99), 2) if slow else None,
        "lat_lost": latency.lost + (slow.lost if slow else 0),
        # The clients count closes since they started, so the last phase has them all.
        "closed": last.closed,
        "close_codes": " ".join(f"{code}x{n}" for code, n in last.close_codes.items()),
        "load1": round(load, 2),
    }


def run_many_connections(
    sockets: int,
    redis_url: str,
    *,
    client_processes: int,
    messages: int,
    launcher: str | None = None,
    logs: Path | None = None,
) -> dict[str, Any]:
    """Hold ``sockets`` subscribed sockets on one rtbridge process and deliver to all."""
    flush_redis(redis_url)
    log_path = logs / f"rtbridge-{sockets}-sockets.log" if logs is not None else None
    server = ServerUnderTest("rtbridge", redis_url, launcher=launcher, log_path=log_path)
    server.start()
    clients = start_clients(client_processes)
    try:
        time.sleep(1.0)
        baseline = rss_kib(server.pid)
        connected = connect(server, clients, sockets)
        time.sleep(1.0)
        loaded = rss_kib(server.pid)
        delivery = None
        if connected["ready"] == sockets:
            delivery = run_phase(server, clients, sockets, messages, 0.0)
        after = rss_kib(server.pid)
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                client.ask({"cmd": "close"})
            client.stop()
        server.stop()
    return {
        "sockets": sockets,
        "welcomed_and_subscribed": connected["ready"],
        "failed": connected["failed"],
        "connect_s": connected["seconds"],
        "server_rss_mib_idle": round(loaded / 1024, 1),
        "kib_per_conn": round((loaded - baseline) / sockets, 1),
        "messages": messages,
        "delivered": delivery.received if delivery else 0,
        "lost": delivery.lost if delivery else None,
        "deliveries_per_s": round(delivery.deliveries_per_s) if delivery else None,
        "server_rss_mib_after": round(after / 1024, 1),
    }


def targets(rows: list[dict[str, Any]], many: dict[str, Any]) -> list[dict[str, Any]]:
    """Compare the rows with the issue's targets."""
    by = {(r["system"], r["subscribers"]): r for r in rows}
    out = []
    for subscribers in sorted({r["subscribers"] for r in rows}):
        ours = by.get(("rtbridge", subscribers))
        if ours is None:
            continue
        for other in ("channels", "channels-cap"):
            theirs = by.get((other, subscribers))
            if theirs and theirs["deliveries_per_s"]:
                ratio = ours["deliveries_per_s"] / theirs["deliveries_per_s"]
                out.append(
                    {
                        "check": f"deliveries/s vs {other} @ {subscribers}",
                        "value": f"{ratio:.1f}x",
                        "target": "≥ 10x" if subscribers == 1000 else "",
                        "met": (ratio >= 10) if subscribers == 1000 else "",
                    }
                )
        out.append(
            {
                "check": f"rtbridge lost @ {subscribers}",
                "value": ours["peak_lost"] + ours["lat_lost"],
                "target": "0",
                "met": ours["peak_lost"] + ours["lat_lost"] == 0,
            }
        )
        out.append(
            {
                "check": f"rtbridge p99 @ {subscribers}, half peak",
                "value": f"{ours['lat_p99_ms']} ms",
                "target": "≤ 50 ms" if subscribers == 1000 else "",
                "met": ours["lat_p99_ms"] <= 50 if subscribers == 1000 else "",
            }
        )
        out.append(
            {
                "check": f"rtbridge memory/idle conn @ {subscribers}",
                "value": f"{ours['kib_per_conn']} KiB",
                "target": "≤ 30 KB",
                "met": ours["kib_per_conn"] * 1.024 <= 30,
            }
        )
    if many:
        out.append(
            {
                "check": f"{many['sockets']} sockets on one rtbridge process",
                "value": f"{many['welcomed_and_subscribed']} ready, "
                f"{many['delivered']}/{many['messages'] * many['sockets']} delivered, "
                f"RSS {many['server_rss_mib_idle']} MiB",
                "target": "10,000",
                # A smaller --connections run (e.g. --quick) checks nothing here.
                "met": (many["welcomed_and_subscribed"] == many["sockets"] and many["lost"] == 0)
                if many["sockets"] >= 10_000
                else "",
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="rtbridge vs Django Channels fan-out.")
    parser.add_argument("--quick", action="store_true", help="a smoke run under a minute")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    parser.add_argument("--subscribers", default=None, help="e.g. 100,1000,5000")
    parser.add_argument("--clients", type=int, default=2, help="load-client processes")
    parser.add_argument("--connections", type=int, default=None, help="the many-sockets test")
    parser.add_argument(
        "--rtbridge-launcher",
        default=None,
        metavar="SCRIPT",
        help="run the rtbridge server as 'python SCRIPT serve ...' instead of 'python -m "
        "rtbridge serve ...' (to measure a server change before it lands)",
    )
    parser.add_argument(
        "--results",
        default=None,
        metavar="NAME",
        help="write benchmarks/results/NAME.json (default: fanout, or fanout-quick)",
    )
    parser.add_argument("--logs", type=Path, default=None, help="keep each server's output in DIR")
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy the rtbridge server's peak into DIR"
    )
    args = parser.parse_args()
    quick = args.quick
    systems = [s for s in args.systems.split(",") if s]
    for system in systems:
        if system not in SYSTEMS + EXTRA_SYSTEMS:
            known = ", ".join(SYSTEMS + EXTRA_SYSTEMS)
            parser.error(f"--systems: unknown {system!r}; choose from {known}")
    subscribers = [
        int(n) for n in (args.subscribers or ("100" if quick else "100,1000,5000")).split(",")
    ]
    many_sockets = args.connections if args.connections is not None else (500 if quick else 10_000)
    for directory in (args.profile, args.logs):
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
    limit = raise_nofile_limit()
    if many_sockets + 100 > limit:
        print(f"open-files limit {limit} is below {many_sockets} sockets", file=sys.stderr)
    binary = redis_server_binary()
    if binary is None:
        print("redis-server not found (apt install redis-server)", file=sys.stderr)
        return 2
    redis_server = RedisServer(binary=binary)
    redis_server.start()
    command = "python -m benchmarks.bench_fanout" + "".join(f" {a}" for a in sys.argv[1:])
    print(f"{command}: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}", flush=True)
    rows: list[dict[str, Any]] = []
    many: dict[str, Any] = {}
    try:
        for count in subscribers:
            for system in systems:
                row = run_case(
                    system,
                    count,
                    redis_server.url,
                    client_processes=args.clients,
                    quick=quick,
                    latency_seconds=2.0 if quick else 5.0,
                    profile_dir=args.profile,
                    launcher=args.rtbridge_launcher,
                    logs=args.logs,
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
        if many_sockets and "rtbridge" in systems:
            many = run_many_connections(
                many_sockets,
                redis_server.url,
                client_processes=args.clients,
                messages=10,
                launcher=args.rtbridge_launcher,
                logs=args.logs,
            )
            print(json.dumps(many), flush=True)
    finally:
        redis_server.stop()
    load_end = os.getloadavg()[0]
    print_table("Fan-out: one channel/group, ~100-byte messages", rows)
    if many:
        print_table("Many sockets on one rtbridge process", [many])
    checks = targets(rows, many)
    print_table("Targets (issue 3)", checks)
    print(f"\nload average at the end: {load_end:.2f}")
    path = write_results(
        args.results or ("fanout-quick" if quick else "fanout"),
        command,
        [{"table": "fanout", **r} for r in rows]
        + ([{"table": "connections", **many}] if many else [])
        + [{"table": "targets", **c} for c in checks]
        + [{"table": "load", "load1_end": round(load_end, 2)}],
    )
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
