"""Load client of the fan-out benchmark: thousands of raw-asyncio WebSockets in one process.

Run by ``benchmarks.bench_fanout`` as ``python -m benchmarks.fanout.client``; it reads one JSON
command per line on stdin and answers each with one JSON line on stdout:

``{"cmd": "connect", "kind": "rtbridge"|"channels", "port": P, "path": "/ws/", "count": N,
"channel": "bench", "concurrency": 100, "since": {"offset": o, "epoch": e}}``
    open N sockets; for rtbridge wait for ``welcome`` and the ``ack`` of a subscribe to
    ``channel`` (resuming from ``since`` when given: the answer counts the acks that said
    ``recovered: true``), for Channels wait for the 101 (the consumer joins its group before
    accepting).
``{"cmd": "arm", "sample_every": k}``
    zero the counters; from now on every k-th message frame has its latency recorded.
``{"cmd": "collect", "expected": E, "quiet": s, "deadline": s}``
    wait until E message frames arrived in total, or nothing arrived for ``quiet`` seconds,
    or ``deadline`` passed; answer with the counts, first/last arrival and the latencies.
``{"cmd": "close"}``
    reset every socket (no TIME_WAIT left behind) and exit.

Why not the ``websockets`` package: at several hundred thousand frames per second its
per-frame cost (a Future and a queue per message) would make the client the bottleneck on a
2-core machine. Here one ``data_received`` call walks every frame of a TCP chunk with a few
integer operations, and only every k-th frame is parsed for its send timestamp.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import sys
import time
from typing import Any

# The marker of a benchmark message: the payload is {"t":<time_ns, 19 digits>,"i":..,"p":..}.
MARKER = b'"t":'
HEARTBEAT = b'{"op":"heartbeat"}'


def raise_nofile_limit() -> int:
    """Raise this process's open-files soft limit to its hard limit; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """Return a masked client→server frame (RFC 6455 requires the client to mask)."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = bytes((0x80 | opcode, 0x80 | length))
    elif length < 65536:
        header = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
    repeated = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        length, "big"
    )
    return header + mask + masked


class Stats:
    """Counters shared by every socket of this process."""

    def __init__(self) -> None:
        self.reset(1)
        self.closed = 0
        self.close_codes: dict[int, int] = {}

    def reset(self, sample_every: int) -> None:
        self.received = 0
        self.first_ns = 0
        self.last_ns = 0
        self.last_mono = time.monotonic()
        self.sample_every = max(1, sample_every)
        self.latencies_us: list[int] = []
        # Reads that carried message frames: received / reads shows how many frames the
        # server coalesced per socket write.
        self.reads = 0
        #: Subscribe answers that said "recovered": true (resumes with since).
        self.recovered = 0


STATS = Stats()


class BenchSocket(asyncio.Protocol):
    """One client WebSocket: handshake, frame walking, counting, heartbeat/ping answers."""

    def __init__(
        self,
        kind: str,
        host: str,
        port: int,
        path: str,
        channel: str,
        since: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        request: dict[str, Any] = {"op": "subscribe", "id": 1, "channel": channel}
        if since is not None:
            request["since"] = since
        self.subscribe = client_frame(json.dumps(request).encode())
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.upgraded = False
        self.buffer = b""
        self.count = 0

    # asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, so no isinstance check.
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        STATS.closed += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost before ready: {exc}"))

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = data
                return
            status = data[: data.find(b"\r\n")]
            if b" 101 " not in status:
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self.upgraded = True
            if self.kind == "channels":
                self.ready.set_result(None)
            data = data[end + 4 :]
        now = time.time_ns()
        stats = STATS
        before = stats.received
        size = len(data)
        pos = 0
        while size - pos >= 2:
            length = data[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                head = 10
            start = pos + head
            end = start + length
            if end > size:
                break
            opcode = data[pos] & 0x0F
            pos = end
            if opcode == 0x1:
                marker = data.find(MARKER, start, end)
                if marker >= 0:
                    self.count += 1
                    stats.received += 1
                    if stats.received % stats.sample_every == 0:
                        sent = int(data[marker + 4 : marker + 23])
                        stats.latencies_us.append((now - sent) // 1000)
                    continue
                self._control(data[start:end])
            elif opcode == 0x8:
                code = int.from_bytes(data[start : start + 2], "big") if length >= 2 else 1005
                stats.close_codes[code] = stats.close_codes.get(code, 0) + 1
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(client_frame(data[start:end], 0xA))
        if pos < size:
            self.buffer = data[pos:]
        if stats.received != before:
            stats.reads += 1
            if not stats.first_ns:
                stats.first_ns = now
            stats.last_ns = now
            stats.last_mono = time.monotonic()

    def _control(self, frame: bytes) -> None:
        # rtbridge's own frames: welcome → subscribe, ack → ready, heartbeat → answer.
        transport = self.transport
        if transport is None:
            return
        if frame == HEARTBEAT:
            transport.write(client_frame(HEARTBEAT))
        elif frame.startswith(b'{"op":"welcome"'):
            transport.write(self.subscribe)
        elif frame.startswith(b'{"op":"ack"') and not self.ready.done():
            if b'"recovered":true' in frame:
                STATS.recovered += 1
            self.ready.set_result(None)


class Client:
    """The sockets of this process and the command loop."""

    def __init__(self) -> None:
        self.sockets: list[BenchSocket] = []

    async def connect(self, command: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        host = command.get("host", "127.0.0.1")
        limit = asyncio.Semaphore(command.get("concurrency", 100))
        failures: list[str] = []
        started = time.monotonic()
        started_ns = time.time_ns()

        async def one() -> None:
            async with limit:
                try:
                    _, sock = await loop.create_connection(
                        lambda: BenchSocket(
                            command["kind"],
                            host,
                            command["port"],
                            command["path"],
                            command.get("channel", "bench"),
                            command.get("since"),
                        ),
                        host,
                        command["port"],
                    )
                    await asyncio.wait_for(sock.ready, command.get("timeout", 30))
                    self.sockets.append(sock)
                except Exception as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(one() for _ in range(command["count"])))
        return {
            "ready": len(self.sockets),
            "failed": len(failures),
            "error": failures[0] if failures else None,
            "seconds": round(time.monotonic() - started, 3),
            "started_ns": started_ns,
            "recovered": STATS.recovered,
        }

    async def collect(self, command: dict[str, Any]) -> dict[str, Any]:
        expected = command["expected"]
        quiet = command.get("quiet", 3.0)
        deadline = time.monotonic() + command.get("deadline", 120.0)
        started = time.monotonic()
        while STATS.received < expected:
            now = time.monotonic()
            if now > deadline or now - max(STATS.last_mono, started) > quiet:
                break
            await asyncio.sleep(0.02)
        counts = [sock.count for sock in self.sockets]
        return {
            "received": STATS.received,
            "reads": STATS.reads,
            "first_ns": STATS.first_ns,
            "last_ns": STATS.last_ns,
            "latencies_us": STATS.latencies_us,
            "min_per_socket": min(counts, default=0),
            "max_per_socket": max(counts, default=0),
            "closed": STATS.closed,
            "close_codes": {str(k): v for k, v in STATS.close_codes.items()},
            "cpu": cpu_seconds(),
        }

    def close(self) -> None:
        for sock in self.sockets:
            if sock.transport is not None:
                sock.transport.abort()


def cpu_seconds() -> float:
    """Return the user + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main() -> None:
    raise_nofile_limit()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    client = Client()
    while True:
        line = await reader.readline()
        if not line:
            client.close()
            return
        command = json.loads(line)
        cmd = command["cmd"]
        if cmd == "connect":
            answer = await client.connect(command)
        elif cmd == "arm":
            for sock in client.sockets:
                sock.count = 0
            STATS.reset(command.get("sample_every", 1))
            answer = {"armed": True, "cpu": cpu_seconds()}
        elif cmd == "collect":
            answer = await client.collect(command)
        elif cmd == "close":
            client.close()
            await asyncio.sleep(0.1)
            print(json.dumps({"closed": True}), flush=True)
            return
        else:
            answer = {"error": f"unknown command {cmd!r}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    try:
        # uvloop roughly halves the event loop's cost per socket event; both systems get the
        # same client, so it only moves the client further from being the bottleneck.
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
