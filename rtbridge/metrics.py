"""The Django view that serves this process's Prometheus metrics (the dispatchers' included)."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse

__all__ = ["view"]


def view(request: HttpRequest) -> HttpResponse:
    """Return the metrics of this process, or of every worker in multiprocess mode.

    Route it yourself behind your own access control (it is not in ``rtbridge.urls``):
    ``path("metrics", rtbridge.metrics.view)``. With ``PROMETHEUS_MULTIPROC_DIR`` set (as
    ``prometheus_client`` documents for gunicorn and uWSGI), the metrics of every worker
    process are summed, so a scrape does not depend on which worker answers it.
    """
    try:
        import prometheus_client
        from prometheus_client import multiprocess
    except ImportError:
        raise ImproperlyConfigured(
            "rtbridge.metrics.view needs prometheus_client: pip install 'rtbridge[server]'."
        ) from None
    registry: prometheus_client.CollectorRegistry = prometheus_client.REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    body = prometheus_client.generate_latest(registry)
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)
