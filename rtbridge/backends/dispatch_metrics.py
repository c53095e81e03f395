"""Prometheus metrics of the hosted backends' dispatchers, in the Django process's registry.

Plain ``prometheus_client`` metrics in its default registry, labelled by backend class, so
they are scraped like any other metric of the process: through ``rtbridge.metrics.view``
(which aggregates every worker with ``prometheus_client``'s multiprocess mode when
``PROMETHEUS_MULTIPROC_DIR`` is set), ``django-prometheus``, or ``start_http_server``.
Without ``prometheus_client`` installed every call here does nothing (the view says why).
"""

from __future__ import annotations

from typing import Any

try:
    from prometheus_client import Counter, Gauge
except ImportError:  # optional: the `server` extra brings it
    Counter = Gauge = None  # type: ignore[assignment,misc]

__all__ = ["DispatchMetrics"]

_FAMILIES: dict[str, Any] = {}


def _families() -> dict[str, Any]:
    # Created on first use, once per process (a registry refuses a name twice).
    if not _FAMILIES and Counter is not None:
        _FAMILIES.update(
            queue=Gauge(
                "rtbridge_dispatch_queue_depth",
                "Messages waiting in the dispatcher's queue.",
                ["backend"],
                multiprocess_mode="livesum",
            ),
            batches=Counter(
                "rtbridge_dispatch_batches", "Batches taken from the queue.", ["backend"]
            ),
            retries=Counter(
                "rtbridge_dispatch_retries",
                "Vendor requests tried again after a failure.",
                ["backend"],
            ),
            dropped=Counter(
                "rtbridge_dispatch_dropped",
                "Messages dropped because the queue was full.",
                ["backend"],
            ),
            sent=Counter(
                "rtbridge_dispatch_sent", "Messages delivered to the vendor.", ["backend"]
            ),
            failed=Counter(
                "rtbridge_dispatch_failed", "Messages that failed after every attempt.", ["backend"]
            ),
        )
    return _FAMILIES


class DispatchMetrics:
    """One dispatcher's children of the metric families (no-ops without prometheus_client)."""

    __slots__ = ("_batches", "_dropped", "_failed", "_queue", "_retries", "_sent")

    def __init__(self, backend: str) -> None:
        families = _families()
        children = {name: family.labels(backend=backend) for name, family in families.items()}
        self._queue = children.get("queue")
        self._batches = children.get("batches")
        self._retries = children.get("retries")
        self._dropped = children.get("dropped")
        self._sent = children.get("sent")
        self._failed = children.get("failed")

    def queue_depth(self, depth: int) -> None:
        if self._queue is not None:
            self._queue.set(depth)

    def batch(self) -> None:
        if self._batches is not None:
            self._batches.inc()

    def retry(self) -> None:
        if self._retries is not None:
            self._retries.inc()

    def dropped(self, count: int) -> None:
        if self._dropped is not None and count:
            self._dropped.inc(count)

    def delivered(self, sent: int, failed: int) -> None:
        if self._sent is not None and sent:
            self._sent.inc(sent)
        if self._failed is not None and failed:
            self._failed.inc(failed)
