"""Wire-test services: soketi (a real Pusher-protocol server), the fake PubNub and Firebase servers,
and Node listeners that receive with the vendors' own JS SDKs."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.contract import Delivery
from tests.services import free_port, missing_service
from tests.wire.fakes.firebase import FakeFirebase
from tests.wire.fakes.pubnub import FakePubNub

WIRE_DIR = Path(__file__).resolve().parent
NODE_MODULES = WIRE_DIR / "node_modules"
JS_CLIENT = WIRE_DIR.parents[1] / "rtbridge" / "clients" / "js" / "src" / "rtbridge.js"

PUSHER_APP = {"app_id": "123456", "key": "app-key", "secret": "app-secret"}


def node_or_skip(package: str) -> str:
    """Return the ``node`` binary, or skip (fail under CI) if it or ``package`` is missing."""
    node = shutil.which("node")
    if node is None:
        missing_service("node is not installed (needed for the wire tests)")
    if not (NODE_MODULES / package).exists():
        missing_service(f"{package} is not installed; run: cd tests/wire && npm ci")
    return node  # type: ignore[return-value]


@dataclass
class Soketi:
    """A soketi process on free loopback ports, limits set like Pusher's."""

    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def options(self) -> dict[str, Any]:
        """Return PusherBackend options that reach this server."""
        return {**PUSHER_APP, "host": "127.0.0.1", "port": self.port, "ssl": False}

    def start(self) -> None:
        node = node_or_skip("@soketi/soketi")
        env = {
            **os.environ,
            "SOKETI_HOST": "127.0.0.1",
            "SOKETI_PORT": str(self.port),
            "SOKETI_METRICS_HOST": "127.0.0.1",
            "SOKETI_METRICS_SERVER_PORT": str(self.metrics_port),
            "SOKETI_METRICS_ENABLED": "false",
            "SOKETI_CLUSTER_UNICAST_ADDRESSES": "127.0.0.1",
            "SOKETI_DEFAULT_APP_ID": PUSHER_APP["app_id"],
            "SOKETI_DEFAULT_APP_KEY": PUSHER_APP["key"],
            "SOKETI_DEFAULT_APP_SECRET": PUSHER_APP["secret"],
            # Pusher's own limits, so chunking and the size check meet a server that enforces them
            # (soketi's names: dist/cli/cli.js; SOKETI_DEFAULT_APP_MAX_EVENT_* are not read).
            "SOKETI_EVENT_MAX_SIZE_IN_KB": "10",
            "SOKETI_EVENT_MAX_BATCH_SIZE": "10",
            "SOKETI_EVENT_MAX_CHANNELS_AT_ONCE": "100",
            "SOKETI_SHUTDOWN_GRACE_PERIOD": "100",
            # Whispers: Pusher apps enable client events in their settings; soketi needs this.
            "SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES": "true",
            # Pusher allows 10 client events per second per connection (Pusher docs, Client
            # events); soketi answers pusher:error 4301 above the rate, as Pusher does.
            "SOKETI_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SEC": "10",
            # User authentication (pusher-js signin(), terminate_user_connections): soketi
            # also closes connections not signed in within the timeout, which Pusher does only
            # when "enforce user authentication" is on: an hour keeps anonymous pages open.
            "SOKETI_DEFAULT_APP_USER_AUTHENTICATION": "true",
            "SOKETI_USER_AUTHENTICATION_TIMEOUT": "3600000",
        }
        soketi_bin = NODE_MODULES / "@soketi" / "soketi" / "bin" / "server.js"
        self.process = subprocess.Popen(
            [node, str(soketi_bin), "start"],
            env=env,
            cwd=WIRE_DIR,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1) as reply:
                    if reply.read().strip() == b"OK":
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"soketi did not start on 127.0.0.1:{self.port}")
            time.sleep(0.1)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(8)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@dataclass
class AuthEmulator:
    """The Firebase Auth emulator (``firebase-tools``), on a free loopback port.

    Started through ``auth_emulator.mjs``, not the ``firebase`` CLI, which fetches its message of
    the day and checks for updates over the network. It issues unsigned ID tokens and refreshes
    them (``securetoken.googleapis.com/v1/token``) as Firebase Auth does, with one divergence:
    its refresh does not check ``validSince``, so ``revoke_refresh_tokens`` does not make a
    refresh fail there (firebase-tools ``lib/emulator/auth/operations.js`` ``grantToken``).
    """

    project_id: str = "demo-rtbridge"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        node = node_or_skip("firebase-tools")
        self.process = subprocess.Popen(
            [node, str(WIRE_DIR / "auth_emulator.mjs"), str(self.port), self.project_id],
            cwd=WIRE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        # Loading firebase-tools takes a while (seconds, more on a loaded machine).
        ready: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: ready.put(self.process.stdout.readline()), daemon=True
        ).start()  # type: ignore[union-attr]
        try:
            line = ready.get(timeout=90)
        except queue.Empty:
            line = ""
        if '"ready"' not in line:
            self.stop()
            raise RuntimeError(f"the Firebase Auth emulator did not start on {self.host}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(8)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()


def _shared_service(config: pytest.Config, name: str, factory: Any) -> Any:
    """Start one service per test session; stop it when the session ends."""
    with _shared_lock:
        service = _shared.get(name)
        if service is None:
            service = factory()
            service.start()
            _shared[name] = service

            def stop() -> None:
                _shared.pop(name, None)
                service.stop()

            config.add_cleanup(stop)
        return service


def shared_soketi(config: pytest.Config) -> Soketi:
    return _shared_service(config, "soketi", Soketi)  # type: ignore[no-any-return]


def shared_fake_pubnub(config: pytest.Config) -> FakePubNub:
    return _shared_service(config, "pubnub", FakePubNub)  # type: ignore[no-any-return]


def shared_fake_firebase(config: pytest.Config) -> FakeFirebase:
    return _shared_service(config, "firebase", FakeFirebase)  # type: ignore[no-any-return]


def shared_auth_emulator(config: pytest.Config) -> AuthEmulator:
    return _shared_service(config, "firebase-auth", AuthEmulator)  # type: ignore[no-any-return]


class NodeListener:
    """Run ``tests/wire/<script>`` with node; it prints one JSON line per received event.

    The first line is ``{"ready": true, "socketId": ...}`` once every subscription is live.
    Messages whose ``exclude`` equals this listener's socket id are dropped, as the rtbridge JS
    client does on PubNub and Firebase (Pusher drops them at the server).
    """

    def __init__(self, script: str, config: dict[str, Any], timeout: float = 20.0) -> None:
        packages = {"listen_pusher.mjs": "pusher-js", "listen_pubnub.mjs": "pubnub"}
        node = node_or_skip(packages.get(script, "firebase"))
        if script == "listen_rtbridge.mjs" and not JS_CLIENT.exists():
            missing_service(f"the rtbridge JS client is missing ({JS_CLIENT})")
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.deliveries: list[Delivery] = []
        self.errors: list[str] = []
        self.process = subprocess.Popen(
            [node, str(WIRE_DIR / script), json.dumps(config)],
            cwd=WIRE_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_errors, daemon=True).start()
        try:
            first = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise RuntimeError(
                f"{script} was not ready after {timeout}s: {self.errors[-5:]}"
            ) from None
        if not first.get("ready"):
            self.close()
            raise RuntimeError(f"{script} failed: {first} {self.errors[-5:]}")
        self.socket_id = first.get("socketId")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.strip()
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def _read_errors(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.errors.append(line.rstrip())

    def received(self, count: int, timeout: float = 5.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                item = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if "error" in item:
                self.errors.append(str(item["error"]))
                continue
            if self.socket_id is not None and item.get("exclude") == self.socket_id:
                continue
            self.deliveries.append(Delivery(item["channel"], item["event"], item.get("data")))
        return list(self.deliveries)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def check_js_client_drops_only_its_own_excluded_messages(backend: Any) -> None:
    """Publish with ``exclude`` through ``backend``; two rtbridge JS pages listen on the wire.

    The page whose socket id was excluded gets only the other message; the other page gets
    both, in order.
    """
    from rtbridge.messages import Message

    config = {"config": backend.client_config(), "channels": ["chat.room"]}
    sender = NodeListener("listen_rtbridge.mjs", config)
    other = NodeListener("listen_rtbridge.mjs", config)
    try:
        backend.publish(Message("chat.room", "said", "hi", exclude=sender.socket_id))
        backend.publish(Message("chat.room", "said", "all"))
        backend.flush(5)
        assert [d.data for d in other.received(2)] == ["hi", "all"]
        assert [d.data for d in sender.received(1)] == ["all"]
        time.sleep(0.2)
        assert len(sender.received(2, timeout=0.2)) == 1
    finally:
        sender.close()
        other.close()
