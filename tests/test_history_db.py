"""The ``"database"`` history store: contiguous offsets under concurrency, trimming, resuming.

Runs on SQLite by default and on PostgreSQL with ``RTBRIDGE_TEST_DB=postgres`` (the Makefile
runs both). Threads share the test database; separate processes use a database of their own
(an SQLite file, or the PostgreSQL test database).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from rtbridge import conf
from rtbridge.exceptions import InvalidPosition
from rtbridge.history import Position
from rtbridge.history_db import DatabaseHistoryStore
from rtbridge.messages import Message
from rtbridge.models import HistoryChannel, HistoryMessage

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[1]


def make_store(size: int = 1000, ttl: float = 600.0) -> DatabaseHistoryStore:
    return DatabaseHistoryStore(
        conf.HistorySettings(enabled=True, size=size, ttl=ttl, store="database")
    )


def publish(store: DatabaseHistoryStore, channel: str, count: int, start: int = 0) -> list[int]:
    positions = store.append([Message(channel, "n", {"n": start + i}) for i in range(count)])
    return [assigned[channel].offset for assigned in positions]


def test_offsets_start_at_1_and_are_contiguous_per_channel() -> None:
    store = make_store()
    assert publish(store, "a", 3) == [1, 2, 3]
    assert publish(store, "b", 2) == [1, 2]
    assert publish(store, "a", 1) == [4]
    first = store.append([Message(["a", "b", "c"], "fan", None)])[0]
    assert {name: position.offset for name, position in first.items()} == {"a": 5, "b": 3, "c": 1}
    epochs = {position.epoch for position in first.values()}
    assert len(epochs) == 3, "each channel has an epoch of its own"
    assert HistoryChannel.objects.get(channel="a").last_offset == 5


def test_the_epoch_stays_while_history_lasts() -> None:
    store = make_store()
    one = store.append([Message("a", "n", 1)])[0]["a"]
    two = store.append([Message("a", "n", 2)])[0]["a"]
    assert one.epoch == two.epoch and len(one.epoch) == 12
    assert make_store().append([Message("a", "n", 3)])[0]["a"] == Position(3, one.epoch)


def test_replay_returns_every_missed_message_in_order_with_its_exclude() -> None:
    store = make_store()
    store.append([Message("a", "created", {"id": 1, "text": "café ☕"})])
    store.append([Message("a", "updated", {"id": 1, "done": True}, exclude="12.34")])
    store.append([Message("a", "deleted", {"id": 1})])
    top = store.replay("a", None)
    assert (top.offset, top.recovered, top.messages) == (3, None, ())
    answer = store.replay("a", Position(1, top.epoch))
    assert answer.recovered is True
    assert answer.as_json() == {
        "channel": "a",
        "recovered": True,
        "offset": 3,
        "epoch": top.epoch,
        "messages": [
            {"offset": 2, "event": "updated", "data": {"id": 1, "done": True}, "exclude": "12.34"},
            {"offset": 3, "event": "deleted", "data": {"id": 1}, "exclude": None},
        ],
    }
    assert store.replay("a", Position(3, top.epoch)).as_json()["messages"] == []
    assert store.replay("a", Position(3, top.epoch)).recovered is True
    assert store.replay("a", Position(0, top.epoch)).messages[0].payload == (
        '{"id":1,"text":"café ☕"}'
    )


def test_another_epoch_is_not_recovered_and_answers_the_top() -> None:
    store = make_store()
    publish(store, "a", 2)
    answer = store.replay("a", Position(1, "someotherepoch"))
    assert (answer.recovered, answer.offset, answer.messages) == (False, 2, ())
    assert answer.epoch == store.replay("a", None).epoch


def test_a_position_beyond_the_top_is_forged() -> None:
    store = make_store()
    publish(store, "a", 2)
    epoch = store.replay("a", None).epoch
    with pytest.raises(InvalidPosition, match="beyond the last offset of 'a' \\(2\\)"):
        store.replay("a", Position(3, epoch))


def test_a_channel_never_published_gets_a_position_the_next_publish_continues() -> None:
    store = make_store()
    top = store.replay("fresh", None)
    assert top.offset == 0
    assert store.append([Message("fresh", "n", 1)])[0]["fresh"] == Position(1, top.epoch)
    assert store.replay("fresh", Position(0, top.epoch)).recovered is True


def test_trimmed_by_size_is_not_recovered() -> None:
    store = make_store(size=5)
    publish(store, "a", 8)
    epoch = store.replay("a", None).epoch
    assert list(
        HistoryMessage.objects.filter(channel__channel="a")
        .order_by("offset")
        .values_list("offset", flat=True)
    ) == [4, 5, 6, 7, 8]
    assert store.replay("a", Position(3, epoch)).recovered is True
    assert [m.offset for m in store.replay("a", Position(3, epoch)).messages] == [4, 5, 6, 7, 8]
    lost = store.replay("a", Position(2, epoch))
    assert (lost.recovered, lost.offset, lost.epoch, lost.messages) == (False, 8, epoch, ())


def _age(channel: str, offsets: list[int], seconds: float) -> None:
    HistoryMessage.objects.filter(channel__channel=channel, offset__in=offsets).update(
        published_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_trimmed_by_age_is_not_recovered() -> None:
    store = make_store(ttl=60)
    publish(store, "a", 4)
    epoch = store.replay("a", None).epoch
    _age("a", [1, 2], 61)
    # Expired messages are never served, even before a write trims them.
    assert store.replay("a", Position(0, epoch)).recovered is False
    assert store.replay("a", Position(1, epoch)).recovered is False
    assert [m.offset for m in store.replay("a", Position(2, epoch)).messages] == [3, 4]
    publish(store, "a", 1)
    kept = HistoryMessage.objects.filter(channel__channel="a").values_list("offset", flat=True)
    assert sorted(kept) == [3, 4, 5], "the write trimmed what was older than ttl"


def test_a_channel_quiet_for_longer_than_ttl_starts_again_with_a_new_epoch() -> None:
    store = make_store(ttl=60)
    publish(store, "a", 3)
    old = store.replay("a", None).epoch
    HistoryChannel.objects.filter(channel="a").update(
        touched_at=timezone.now() - timedelta(seconds=61)
    )
    _age("a", [1, 2, 3], 61)
    renewed = store.append([Message("a", "n", 4)])[0]["a"]
    assert renewed.offset == 1 and renewed.epoch != old
    assert store.replay("a", Position(3, old)).recovered is False
    assert HistoryMessage.objects.filter(channel__channel="a").count() == 1


def test_a_read_after_expiry_renews_the_position_too() -> None:
    store = make_store(ttl=60)
    publish(store, "a", 3)
    old = store.replay("a", None).epoch
    HistoryChannel.objects.filter(channel="a").update(
        touched_at=timezone.now() - timedelta(seconds=61)
    )
    answer = store.replay("a", Position(3, old))
    assert (answer.recovered, answer.offset) == (False, 0) and answer.epoch != old
    assert store.append([Message("a", "n", 4)])[0]["a"] == Position(1, answer.epoch)


def test_the_sweep_removes_quiet_channels_and_writes_trim_busy_ones() -> None:
    store = make_store(ttl=60)
    publish(store, "quiet", 2)
    publish(store, "busy", 2)
    HistoryChannel.objects.filter(channel="quiet").update(
        touched_at=timezone.now() - timedelta(seconds=61)
    )
    _age("quiet", [1, 2], 61)
    _age("busy", [1], 61)
    store.sweep()
    assert list(HistoryChannel.objects.values_list("channel", flat=True)) == ["busy"]
    assert sorted(HistoryMessage.objects.values_list("offset", flat=True)) == [1, 2]
    publish(store, "busy", 1)
    assert sorted(HistoryMessage.objects.values_list("offset", flat=True)) == [2, 3]


def test_a_publish_inside_a_transaction_commits_its_positions_on_its_own() -> None:
    store = make_store()
    with pytest.raises(RuntimeError), transaction.atomic():
        assert publish(store, "a", 2) == [1, 2]
        raise RuntimeError("the caller's transaction rolls back")
    # The messages may already be on their way: their offsets must not be given out again.
    assert publish(store, "a", 1) == [3]
    store.close()


def test_threads_publishing_to_one_channel_get_contiguous_offsets() -> None:
    store = make_store()
    results: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work() -> None:
        try:
            start.wait()
            for _ in range(25):
                results.extend(publish(store, "race", 2))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert sorted(results) == list(range(1, 201))
    assert HistoryMessage.objects.filter(channel__channel="race").count() == 200


def _worker(job: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.history_worker", json.dumps(job)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def run_processes(
    databases: dict[str, Any], processes: int, count: int, **job: Any
) -> list[list[Any]]:
    """Start ``processes`` workers on one channel at once; return every line they printed."""
    job.update(databases=databases, channel="race", count=count, batch=3)
    workers = [_worker(job) for _ in range(processes)]
    for worker in workers:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        assert json.loads(line or "null") == "ready", worker.communicate()[1]
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    lines: list[list[Any]] = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        lines.extend(json.loads(line) for line in out.splitlines())
    return lines


def check_contiguous(lines: list[list[Any]], total: int) -> None:
    offsets = Counter(offset for offset, _, _ in lines)
    assert [offset for offset, seen in offsets.items() if seen > 1] == [], "duplicate offsets"
    assert sorted(offsets) == list(range(1, total + 1)), "a hole in the offsets"
    assert len({epoch for _, epoch, _ in lines}) == 1


def test_processes_publishing_to_one_channel_get_contiguous_offsets(tmp_path: Path) -> None:
    if connection.vendor == "sqlite":
        # The test database lives in this process's memory; the workers share a file.
        databases = {
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path / "h.db")}
        }
        migrate = _worker({"databases": databases, "migrate": True})
        _, err = migrate.communicate(timeout=60)
        assert migrate.returncode == 0, err
    else:
        databases = {"default": {**connection.settings_dict, "TEST": {}}}
        databases["default"].pop("TIME_ZONE", None)
    lines = run_processes(databases, processes=3, count=60)
    check_contiguous(lines, 180)
