"""The dispatcher's Prometheus metrics, scraped through ``rtbridge.metrics.view``."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from django.test import RequestFactory
from prometheus_client.parser import text_string_to_metric_families

import rtbridge.metrics
from rtbridge.exceptions import PublishError
from rtbridge.messages import Message
from tests.backends.test_dispatch import RecordingBackend

ROOT = Path(__file__).resolve().parents[2]


def scraped(body: str, backend: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if (
                sample.name.startswith("rtbridge_dispatch")
                and sample.labels.get("backend") == backend
            ):
                values[sample.name] = sample.value
    return values


def scrape(backend: str = "MeteredBackend") -> dict[str, float]:
    response = rtbridge.metrics.view(RequestFactory().get("/metrics"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return scraped(response.content.decode(), backend)


class MeteredBackend(RecordingBackend):
    """Its own label, so counts from other tests' backends do not mix in."""


def test_queue_batches_retries_drops_and_deliveries_are_exposed() -> None:
    before = scrape()
    backend = MeteredBackend(retry_backoff=0.001, max_batch=2)
    try:
        backend.failures.append(PublishError("503 from the vendor", status=503, retryable=True))
        backend.publish_many([Message("chat", "said", n) for n in range(5)])
        backend.flush(5)
        after = scrape()
        delta = {name: after[name] - before.get(name, 0) for name in after}
        assert delta["rtbridge_dispatch_sent_total"] == 5
        assert delta["rtbridge_dispatch_retries_total"] == 1
        assert delta["rtbridge_dispatch_batches_total"] >= 3  # at most 2 messages each
        assert after["rtbridge_dispatch_queue_depth"] == 0
        # A full queue with when_full="drop": counted, not silent.
        dropping = MeteredBackend(queue_size=2, when_full="drop")
        dropping.gate.clear()  # the sender is stuck: the queue fills
        try:
            dropping.publish_many([Message("chat", "said", n) for n in range(2)])
            dropping.publish(Message("chat", "said", 9))  # after the first batch is taken
            dropping.publish_many([Message("chat", "said", n) for n in range(3)])
            assert (
                scrape()["rtbridge_dispatch_dropped_total"]
                >= before.get("rtbridge_dispatch_dropped_total", 0) + 3
            )
        finally:
            dropping.gate.set()
            dropping.close()
    finally:
        backend.close()


def test_multiprocess_mode_sums_every_worker() -> None:
    # As under gunicorn: each worker writes its own files; one scrape sums them all.
    worker = textwrap.dedent(
        """
        import django
        django.setup()
        from rtbridge.messages import Message
        from tests.backends.test_dispatch_metrics import MeteredBackend
        backend = MeteredBackend()
        backend.publish_many([Message("chat", "said", n) for n in range(3)])
        backend.flush(10)
        backend.close()
        """
    )
    scraper = textwrap.dedent(
        """
        import django
        django.setup()
        from django.test import RequestFactory
        import rtbridge.metrics
        print(rtbridge.metrics.view(RequestFactory().get("/metrics")).content.decode())
        """
    )
    with tempfile.TemporaryDirectory() as directory:
        env: dict[str, Any] = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": directory,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
        }
        for _ in range(2):
            subprocess.run(
                [sys.executable, "-c", worker], cwd=ROOT, env=env, check=True, timeout=60
            )
        body = subprocess.run(
            [sys.executable, "-c", scraper],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=60,
            capture_output=True,
            text=True,
        ).stdout
    values = scraped(body, "MeteredBackend")
    assert values["rtbridge_dispatch_sent_total"] == 6
    assert values["rtbridge_dispatch_queue_depth"] == 0  # livesum: only live workers count
