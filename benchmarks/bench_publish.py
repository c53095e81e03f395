"""Cost of ``rtbridge.publish()`` and of the publishing mixin on ``save()``.

Run: ``python -m benchmarks.bench_publish`` (SQLite) and
``BENCH_DB=postgres python -m benchmarks.bench_publish`` (PostgreSQL on 127.0.0.1:5432).
Targets (issue 2): ``publish()`` to ``dummy`` ≤ 20 µs; the mixin adds ≤ 15 % to a PostgreSQL
``save()`` inside a transaction.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

import django

django.setup()

from django.db import connection, transaction
from django.test import override_settings

import rtbridge
from benchmarks.benchapp.models import LiveItem, PlainItem
from benchmarks.common import per_call_us, print_table, write_results
from rtbridge.messages import Message

DATA = {"id": 123, "text": "buy oat milk", "done": False, "todo_list_id": 7}


def bench_publish() -> list[dict[str, Any]]:
    """Time Message construction and publish() through dummy and locmem."""
    rows = []
    rows.append(
        {
            "what": "Message(...) validation + JSON",
            "us_per_call": per_call_us(
                lambda: Message("todo.todoitem.123", "updated", DATA), number=50_000
            ),
        }
    )
    for backend in ("dummy", "locmem"):
        with override_settings(RTBRIDGE_BACKEND=backend):
            rtbridge.get_backend()

            def one() -> None:
                rtbridge.publish("todo.todoitem.123", "updated", DATA)

            def three() -> None:
                rtbridge.publish(
                    ["todo.todoitem", "todo.todoitem.123", "todo.todoitem;todo_list_id=7"],
                    "updated",
                    DATA,
                )

            us_one = per_call_us(one, number=50_000)
            rtbridge.outbox.clear()
            us_three = per_call_us(three, number=50_000)
            rtbridge.outbox.clear()
        rows.append({"what": f"publish() 1 channel → {backend}", "us_per_call": us_one})
        rows.append({"what": f"publish() 3 channels → {backend}", "us_per_call": us_three})
    return rows


def _save_loop(model: type, n: int) -> float:
    """Return µs per (update + save + commit) of one row, each in its own transaction."""
    obj = model.objects.create(list_id=1, text="start")
    start = time.perf_counter()
    for i in range(n):
        with transaction.atomic():
            obj.text = f"text {i}"
            obj.done = not obj.done
            obj.save()
    return (time.perf_counter() - start) / n * 1e6


def _create_loop(model: type, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        with transaction.atomic():
            model.objects.create(list_id=i % 10, text=f"item {i}")
    return (time.perf_counter() - start) / n * 1e6


def bench_save(n: int = 2000, rounds: int = 7) -> list[dict[str, Any]]:
    """Compare save()/create() with and without the mixin, interleaved rounds, median."""
    results: dict[str, list[float]] = {
        k: [] for k in ("plain_save", "live_save", "plain_create", "live_create")
    }
    for _ in range(rounds):
        results["plain_save"].append(_save_loop(PlainItem, n))
        results["live_save"].append(_save_loop(LiveItem, n))
        results["plain_create"].append(_create_loop(PlainItem, n // 2))
        results["live_create"].append(_create_loop(LiveItem, n // 2))
    med = {k: statistics.median(v) for k, v in results.items()}
    vendor = connection.vendor
    return [
        {
            "what": f"update+save+commit ({vendor})",
            "plain_us": med["plain_save"],
            "mixin_us": med["live_save"],
            "overhead_pct": (med["live_save"] / med["plain_save"] - 1) * 100,
        },
        {
            "what": f"create+commit ({vendor})",
            "plain_us": med["plain_create"],
            "mixin_us": med["live_create"],
            "overhead_pct": (med["live_create"] / med["plain_create"] - 1) * 100,
        },
    ]


def main() -> None:
    publish_rows = bench_publish()
    print_table("publish() cost (median of 7 runs)", publish_rows)
    old_name = connection.settings_dict["NAME"]
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        save_rows = bench_save()
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    print_table(f"SelfPublishModel overhead on {connection.vendor} ({test_db})", save_rows)
    db = os.environ.get("BENCH_DB", "sqlite")
    prefix = "BENCH_DB=postgres " if db == "postgres" else ""
    path = write_results(
        f"publish-{db}",
        f"{prefix}python -m benchmarks.bench_publish",
        publish_rows + save_rows,
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
