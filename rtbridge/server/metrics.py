"""Prometheus metrics of a server node (``prometheus_client``), served at ``/metrics``.

Counters live as plain integers in :class:`~rtbridge.server.stats.NodeStats` (the fan-out
path only adds to them) and are read when Prometheus scrapes, by :class:`NodeCollector`;
only the latency histogram is observed as messages go out, once per message and channel,
never per delivery. Each ``Server`` has its own registry, so nodes in one process (tests)
do not mix.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any, Protocol

import tornado.web
from django.core.exceptions import ImproperlyConfigured

from .stats import LOOP_LAG_BOUNDS, NodeStats

try:
    import prometheus_client
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
except ImportError:  # the `server` extra brings it; checked by NodeMetrics
    prometheus_client = None  # type: ignore[assignment]

__all__ = ["DeliveryLatency", "MetricsHandler", "NodeMetrics"]

#: Publish-to-delivery buckets (seconds): a loop turn is ~0.1-1 ms; seconds mean trouble.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

#: NodeStats counter -> (metric name without _total, help text).
COUNTERS: dict[str, tuple[str, str]] = {
    "opened": ("rtbridge_connections_opened", "Sockets opened since the node started."),
    "closed": ("rtbridge_connections_closed", "Sockets closed since the node started."),
    "refused": ("rtbridge_connections_refused", "Handshakes refused (origin, host, full)."),
    "messages": ("rtbridge_messages_in", "Messages that reached this node, per channel."),
    "frames": ("rtbridge_deliveries", "Message frames queued to subscribers."),
    "bytes_out": ("rtbridge_bytes_out", "Bytes of frames handed to the sockets."),
    "errors": ("rtbridge_bad_frames", "Client frames answered with an error frame."),
    "abusers": ("rtbridge_abuse_closes", "Sockets closed 4001 (too many bad frames)."),
    "slow_consumers": ("rtbridge_slow_consumer_closes", "Sockets closed 4002 (slow consumer)."),
    "idle_closed": ("rtbridge_idle_closes", "Sockets closed 4408 (idle)."),
    "protocol_failures": (
        "rtbridge_protocol_failures",
        "Sockets failed for breaking RFC 6455 (close 1002, 1007 or 1009).",
    ),
    "gaps": ("rtbridge_gaps", "Gap frames sent (per channel) after a broker outage."),
    "whispers": ("rtbridge_whispers", "Whispers relayed to this node's subscribers."),
    "calls": ("rtbridge_calls", "Router calls served over sockets."),
    "revoked": ("rtbridge_revocations", "Subscriptions ended by a revocation."),
}


class NodeView(Protocol):
    """What the collector reads at scrape time (``Server`` provides it)."""

    stats: NodeStats

    def gauges(self) -> dict[str, float]:
        """Return connections, subscriptions, channels and the broker's state, right now."""


class NodeCollector:
    """Turn a node's counters and gauges into Prometheus metrics when scraped."""

    def __init__(self, node: NodeView) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        stats = self.node.stats
        for field, (name, documentation) in COUNTERS.items():
            yield CounterMetricFamily(name, documentation, value=getattr(stats, field))
        gauges = self.node.gauges()
        yield GaugeMetricFamily(
            "rtbridge_connections", "Open sockets.", value=gauges["connections"]
        )
        yield GaugeMetricFamily(
            "rtbridge_subscriptions",
            "Subscriptions of the open sockets.",
            value=gauges["subscriptions"],
        )
        yield GaugeMetricFamily(
            "rtbridge_channels", "Channels with subscribers on this node.", value=gauges["channels"]
        )
        yield GaugeMetricFamily(
            "rtbridge_broker_connected",
            "1 when the broker (Redis) connection is up, else 0.",
            value=gauges["broker_connected"],
        )
        yield CounterMetricFamily(
            "rtbridge_broker_reconnects",
            "Times the broker connection was re-established.",
            value=gauges["broker_reconnects"],
        )
        yield CounterMetricFamily(
            "rtbridge_broker_dropped",
            "Broker messages dropped as malformed.",
            value=gauges["broker_dropped"],
        )
        yield GaugeMetricFamily(
            "rtbridge_ready", "1 when /readyz answers 200, else 0.", value=gauges["ready"]
        )
        yield loop_lag_histogram(stats)


def loop_lag_histogram(stats: NodeStats) -> Metric:
    """Return the loop-lag probe's wake-ups as a Prometheus histogram (cumulative buckets)."""
    buckets: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip((*LOOP_LAG_BOUNDS, float("inf")), stats.loop_lag_buckets, strict=True):
        total += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), total))
    return HistogramMetricFamily(
        "rtbridge_loop_lag_seconds",
        "How late the loop-lag probe (due every 20 ms) ran: the longest callbacks of the loop.",
        buckets=buckets,
        sum_value=stats.loop_lag_sum,
    )


class DeliveryLatency:
    """Observe, per message and channel, the time from publish to frames handed to sockets.

    The start is when the message reached the node (``Server.publish`` stamps the call, the
    Redis broker the read) and the end is the write at the end of that loop turn, when every
    subscriber's frames went to the kernel (or to its backlog if it is slow).
    """

    def __init__(self, histogram: Any) -> None:
        self._histogram = histogram
        self._started: list[float] = []

    def delivered(self, started: float) -> None:
        """Note a message (``started``: ``time.perf_counter()``) whose frames were queued."""
        if not self._started:
            # Scheduled after the sends of this turn, so after the flush queue's write.
            asyncio.get_running_loop().call_soon(self._observe)
        self._started.append(started)

    def _observe(self) -> None:
        now = time.perf_counter()
        started, self._started = self._started, []
        observe = self._histogram.observe
        for start in started:
            observe(now - start)


class NodeMetrics:
    """A node's registry: its counters, the latency histogram, and process metrics."""

    def __init__(self, node: NodeView) -> None:
        if prometheus_client is None:
            raise ImproperlyConfigured(
                "RTBRIDGE_SERVER['metrics_path'] is set, but prometheus_client is not installed; "
                "pip install 'rtbridge[server]' (or set metrics_path to None)."
            )
        self.registry = prometheus_client.CollectorRegistry()
        self.registry.register(NodeCollector(node))
        prometheus_client.ProcessCollector(registry=self.registry)
        histogram = prometheus_client.Histogram(
            "rtbridge_delivery_latency_seconds",
            "From a message reaching the node to its frames handed to the sockets.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.latency = DeliveryLatency(histogram)

    def render(self) -> tuple[bytes, str]:
        """Return the exposition text and its content type."""
        body = prometheus_client.generate_latest(self.registry)
        return body, prometheus_client.CONTENT_TYPE_LATEST


class MetricsHandler(tornado.web.RequestHandler):
    """``GET /metrics``: the node's metrics in Prometheus' text format."""

    metrics: NodeMetrics

    def initialize(self, metrics: NodeMetrics) -> None:
        self.metrics = metrics

    def get(self) -> None:
        body, content_type = self.metrics.render()
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-store")
        self.finish(body)
