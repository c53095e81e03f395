"""Publish a numbered stream through ``RedisBackend`` at a steady rate (run as a subprocess).

``python -m tests.server.stream_publisher <redis url> <prefix> <channel> <count> <per second>
<RTBRIDGE_HISTORY as JSON>``: message ``n`` (1..count) carries ``{"n": n}``; prints
``published <count> in <seconds>s`` when done. Paced by the clock, so a slow moment is
caught up at once instead of stretching the stream.
"""

from __future__ import annotations

import json
import sys
import time

import django
from django.conf import settings


def main(url: str, prefix: str, channel: str, count: int, rate: float, history: str) -> None:
    settings.configure(RTBRIDGE_HISTORY=json.loads(history))
    django.setup()
    from rtbridge.backends.redis import RedisBackend
    from rtbridge.messages import Message

    backend = RedisBackend(url=url, prefix=prefix)
    backend.open()
    started = time.monotonic()
    for number in range(1, count + 1):
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        backend.publish(Message(channel, "n", {"n": number}))
    print(f"published {count} in {time.monotonic() - started:.2f}s", flush=True)


if __name__ == "__main__":
    url, prefix, channel, count, rate, history = sys.argv[1:7]
    main(url, prefix, channel, int(count), float(rate), history)
