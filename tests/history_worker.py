"""A separate process appending to a history store: ``python -m tests.history_worker '<json>'``.

The JSON gives ``databases`` (Django's DATABASES), ``history`` (RTBRIDGE_HISTORY), ``migrate``
(run the migrations first), ``channel``, ``count`` and ``batch``. It waits for a line on stdin
(so several workers start together), publishes ``count`` messages in batches of ``batch``
and prints each assigned offset and epoch as one JSON line ``[offset, epoch, n]``.
"""

from __future__ import annotations

import json
import sys

import django
from django.conf import settings


def main() -> None:
    job = json.loads(sys.argv[1])
    settings.configure(
        DATABASES=job["databases"],
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rtbridge"],
        USE_TZ=True,
        RTBRIDGE_HISTORY=job.get("history", {}),
        RTBRIDGE_REDIS=job.get("redis", {}),
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
    from django.core.management import call_command

    from rtbridge.history import load_store
    from rtbridge.messages import Message

    if job.get("migrate"):
        call_command("migrate", "rtbridge", verbosity=0)
        print(json.dumps("migrated"), flush=True)
        return
    store = load_store()
    assert store is not None
    print(json.dumps("ready"), flush=True)
    sys.stdin.readline()
    channel, count, batch = job["channel"], job["count"], job["batch"]
    sent = 0
    while sent < count:
        size = min(batch, count - sent)
        messages = [Message(channel, "n", {"n": sent + i}) for i in range(size)]
        for i, assigned in enumerate(store.append(messages)):
            position = assigned[channel]
            print(json.dumps([position.offset, position.epoch, sent + i]), flush=True)
        sent += size
    store.close()


if __name__ == "__main__":
    main()
