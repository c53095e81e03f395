"""Request-path cost of ``rtbridge.publish()`` on the hosted backends, and HTTP calls per burst.

Run: ``python -m benchmarks.bench_hosted`` (needs ``cd tests/wire && npm ci`` for soketi and
pusher-js). Pusher runs against a real soketi on 127.0.0.1 started here; PubNub and Firebase
against the loopback fakes of the wire tests (their sync numbers say little about the real
services, whose round trips are 10-100 ms).
Targets (issue 5): ``publish()`` with the dispatcher ≤ 50 µs on the request path; ≥ 8 events
per Pusher HTTP call on average for bursty publishing. Issue 6 adds the cost of one auth
answer (``auth_response``): a local signature for Pusher, an Access Manager grant (one HTTP
round trip, to the fake here) for PubNub, an unsigned emulator custom token for Firebase (a
real one adds an RSA signature, about 1 ms).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

import django

django.setup()

from django.core.management import call_command
from django.test import override_settings

import rtbridge
from benchmarks.common import print_table, write_results
from rtbridge.channel_names import encode_for_pusher
from rtbridge.publishers import get_backend
from rtbridge.tokens import Grant
from tests.wire.fakes.firebase import FakeFirebase
from tests.wire.fakes.pubnub import FakePubNub
from tests.wire.servers import NodeListener, Soketi

DATA = {"id": 123, "text": "buy oat milk", "done": False, "todo_list_id": 7}
MODEL_CHANNELS = ["todo.todoitem", "todo.todoitem.123", "todo.todoitem;todo_list_id=7"]


class CountingHTTP:
    """Wrap the pusher SDK's HTTP backend and count the requests it really sends."""

    def __init__(self, backend: Any) -> None:
        http = backend.client._pusher_client.http
        self.calls = 0
        self._send = http.send_request

        def send_request(request: Any) -> Any:
            self.calls += 1
            return self._send(request)

        http.send_request = send_request


def timings_us(count: int, channels: list[str]) -> list[float]:
    out = []
    for i in range(count):
        start = time.perf_counter()
        rtbridge.publish(channels, "updated", {**DATA, "n": i})
        out.append((time.perf_counter() - start) * 1e6)
    return out


def request_path(alias: str, server_options: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for mode, count in (("background", 5000), ("sync", 500)):
        options = {**server_options, "mode": mode}
        with override_settings(RTBRIDGE_BACKEND=alias, RTBRIDGE_OPTIONS=options):
            timings_us(50, MODEL_CHANNELS)  # warm up: client, session, thread
            rtbridge.flush(10)
            costs = timings_us(count, MODEL_CHANNELS)
            rtbridge.flush(30)
            backend = get_backend()
            failed = backend.failed_count
        costs.sort()
        rows.append(
            {
                "what": f"rtbridge.publish() to {alias}, mode={mode}, 3 channels",
                "calls": count,
                "p50_us": statistics.median(costs),
                "p99_us": costs[int(len(costs) * 0.99)],
                "failed": failed,
            }
        )
    return rows


def auth_cost(alias: str, server_options: dict[str, Any], count: int = 300) -> dict[str, Any]:
    """Time ``auth_response`` for a presence channel (what the auth endpoint adds to Django)."""
    member = {"id": "7", "info": {"name": "Ann"}}
    with override_settings(RTBRIDGE_BACKEND=alias, RTBRIDGE_OPTIONS=server_options):
        backend = get_backend()
        socket = "123.456" if alias == "pusher" else "page-1"
        backend.auth_response(socket, Grant("presence-todo.todoitem.0", "7", member))  # warm up
        costs = []
        for i in range(count):
            grant = Grant(f"presence-todo.todoitem.{i % 20}", "7", member)
            start = time.perf_counter()
            backend.auth_response(socket, grant)
            costs.append((time.perf_counter() - start) * 1e6)
    costs.sort()
    return {
        "what": f"auth_response() on {alias}, presence channel",
        "calls": count,
        "p50_us": statistics.median(costs),
        "p99_us": costs[int(len(costs) * 0.99)],
        "failed": 0,
    }


def bursts(soketi: Soketi, channels_per_message: int) -> dict[str, Any]:
    """Publish 1,000 messages in random bursts of 1-50 with 0-20 ms pauses; count HTTP calls."""
    rng = random.Random(5)
    channels = MODEL_CHANNELS[:channels_per_message]
    listener = NodeListener(
        "listen_pusher.mjs",
        {
            "key": soketi.options["key"],
            "wsHost": "127.0.0.1",
            "wsPort": soketi.port,
            "channels": [[channels[0], encode_for_pusher(channels[0])]],
        },
    )
    try:
        with override_settings(RTBRIDGE_BACKEND="pusher", RTBRIDGE_OPTIONS=soketi.options):
            backend = get_backend()
            counter = CountingHTTP(backend)
            sent = 0
            start = time.perf_counter()
            while sent < 1000:
                burst = min(rng.randint(1, 50), 1000 - sent)
                for _ in range(burst):
                    rtbridge.publish(channels, "updated", {**DATA, "n": sent})
                    sent += 1
                time.sleep(rng.uniform(0, 0.02))
            rtbridge.flush(30)
            elapsed = time.perf_counter() - start
            received = listener.received(1000, timeout=15)
            failed = backend.failed_count
    finally:
        listener.close()
    in_order = [d.data["n"] for d in received] == list(range(1000))
    events = 1000 * channels_per_message
    return {
        "what": f"1,000 bursty publishes, {channels_per_message} channel(s) each",
        "http_calls": counter.calls,
        "events_per_call": events / counter.calls,
        "messages_per_call": 1000 / counter.calls,
        "received_in_order": f"{len(received)}/1000 {'yes' if in_order else 'NO'}",
        "seconds": elapsed,
        "failed": failed,
    }


def main() -> None:
    # History is on by default: the hosted backends keep positions in the database store.
    call_command("migrate", verbosity=0)
    soketi, pubnub, firebase = Soketi(), FakePubNub(), FakeFirebase()
    for server in (soketi, pubnub, firebase):
        server.start()
    try:
        cost_rows = request_path("pusher", soketi.options)
        burst_rows = [bursts(soketi, 1), bursts(soketi, 3)]
        pubnub_options = {
            "publish_key": pubnub.publish_key,
            "subscribe_key": pubnub.subscribe_key,
            "origin": pubnub.host,
            "ssl": False,
        }
        cost_rows += request_path("pubnub", pubnub_options)
        firebase_options = {"database_url": firebase.database_url, "emulator_host": firebase.host}
        cost_rows += request_path("firebase", firebase_options)
        pubnub.secret_key = "bench-secret"
        os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = firebase.host
        cost_rows += [
            auth_cost("pusher", soketi.options),
            auth_cost("pubnub", {**pubnub_options, "secret_key": "bench-secret"}),
            auth_cost("firebase", firebase_options),
        ]
    finally:
        for server in (soketi, pubnub, firebase):
            server.stop()
    print_table(
        "Request-path cost of publish() (soketi; loopback fakes for PubNub and Firebase)",
        cost_rows,
    )
    print_table("HTTP calls to the Pusher API per 1,000 bursty publishes", burst_rows)
    path = write_results("hosted", "python -m benchmarks.bench_hosted", [*cost_rows, *burst_rows])
    print(f"\nwrote {path}")
    # Other processes distort µs timings on a small machine; say how busy it was.
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
