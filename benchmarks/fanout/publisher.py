"""Publisher of the fan-out benchmark: what a Django process does, in its own process.

``python -m benchmarks.fanout.publisher --system rtbridge|channels|pusher --count M [--rate R]``
(``BENCH_REDIS_URL`` names Redis, or ``BENCH_REDIS_OPTIONS`` holds the JSON of the
backend's options, e.g. ``{"cluster": {...}}``; Channels also reads
``BENCH_CHANNELS_CAPACITY``; ``pusher`` publishes to soketi at ``BENCH_SOKETI`` =
``host:port``). ``--channels K`` spreads the rtbridge messages over ``bench.0`` ...
``bench.<K-1>`` in turn (default: all on ``bench``). It sets
up, prints ``{"ready": true}``, waits for a line on stdin, publishes ``count`` messages of
about 100 bytes of JSON (``rate`` per second, or as fast as it can with ``--rate 0``) and
prints ``{"published", "errors", "start_ns", "end_ns", "cpu"}``.

rtbridge: ``RedisBackend.publish(Message(...))`` (one ``PUBLISH``), or ``publish_many`` of
``--batch`` messages per round trip, so that one publisher process can outrun the server
(as several Django processes would). Channels:
``async_to_sync(channel_layer.group_send)(...)``, as a Django view would call it. soketi:
``PusherBackend(mode="sync").publish(Message(...))``, one HTTP ``trigger_batch`` per message
(the background dispatcher would batch paced messages as well, which is not the point here).
Each payload is ``{"t": time.time_ns() at publish, "i": n, "p": padding}``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

CHANNEL = "bench"
PADDING = "x" * 58  # brings the JSON payload to 100 bytes
last_index = 0  # the batching sender flushes at the last message


def payload(index: int) -> dict[str, Any]:
    """Return the data of message ``index``, stamped with the current wall clock."""
    return {"t": time.time_ns(), "i": index, "p": PADDING}


def channel_of(index: int, channels: int) -> str:
    """Return the channel of message ``index``: ``bench``, or ``bench.<index mod channels>``."""
    return CHANNEL if channels <= 1 else f"{CHANNEL}.{index % channels}"


def rtbridge_sender(batch: int, channels: int = 1) -> Callable[[int], None]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.fanout.rtbridge_settings")
    import django

    django.setup()
    from rtbridge.backends.redis import RedisBackend
    from rtbridge.messages import Message

    options = json.loads(os.environ.get("BENCH_REDIS_OPTIONS") or "null") or {
        "url": os.environ["BENCH_REDIS_URL"]
    }
    backend = RedisBackend(**options)
    backend.open()

    if batch <= 1:

        def send(index: int) -> None:
            backend.publish(Message(channel_of(index, channels), "tick", payload(index)))

        return send

    pending: list[Message] = []

    def send_batched(index: int) -> None:
        # publish_many: the messages of a batch share one round trip (a pipeline).
        pending.append(Message(channel_of(index, channels), "tick", payload(index)))
        if len(pending) >= batch or index == last_index:
            backend.publish_many(pending)
            pending.clear()

    return send_batched


def pusher_sender() -> Callable[[int], None]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.fanout.rtbridge_settings")
    import django

    django.setup()
    from rtbridge.backends.pusher import PusherBackend
    from rtbridge.messages import Message

    host, port = os.environ["BENCH_SOKETI"].rsplit(":", 1)
    backend = PusherBackend(
        app_id=os.environ.get("BENCH_SOKETI_APP_ID", "123456"),
        key=os.environ.get("BENCH_SOKETI_KEY", "app-key"),
        secret=os.environ.get("BENCH_SOKETI_SECRET", "app-secret"),
        host=host,
        port=int(port),
        ssl=False,
        mode="sync",
    )

    def send(index: int) -> None:
        backend.publish(Message(CHANNEL, "tick", payload(index)))

    return send


def channels_sender() -> Callable[[int], None]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.fanout.channels_settings")
    import django

    django.setup()
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    assert layer is not None
    group_send = async_to_sync(layer.group_send)

    def send(index: int) -> None:
        text = json.dumps(payload(index), separators=(",", ":"))
        group_send(CHANNEL, {"type": "bench.message", "text": text})

    return send


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system", choices=["rtbridge", "channels", "pusher"], required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s; 0 = flat out")
    parser.add_argument(
        "--batch", type=int, default=1, help="rtbridge: messages per publish_many() round trip"
    )
    parser.add_argument("--channels", type=int, default=1, help="rtbridge: bench.0..K-1")
    args = parser.parse_args()
    global last_index
    last_index = args.count - 1
    senders = {
        "rtbridge": lambda: rtbridge_sender(args.batch, args.channels),
        "channels": channels_sender,
        "pusher": pusher_sender,
    }
    send = senders[args.system]()
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    errors = 0
    first_error = None
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    start = time.perf_counter()
    start_ns = time.time_ns()
    # How far behind its schedule the publisher fell (a server that answers publishes slowly,
    # e.g. soketi fanning out before it replies, holds the paced publisher back).
    max_behind = 0.0
    for index in range(args.count):
        if interval:
            # Paced: message i leaves at start + i * interval, whatever the previous ones cost.
            delay = start + index * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            else:
                max_behind = max(max_behind, -delay)
        try:
            send(index)
        except Exception as exc:
            errors += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"
    end_ns = time.time_ns()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "published": args.count - errors,
                "errors": errors,
                "error": first_error,
                "start_ns": start_ns,
                "end_ns": end_ns,
                "max_behind_ms": round(max_behind * 1000, 1),
                "cpu": usage.ru_utime + usage.ru_stime,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
