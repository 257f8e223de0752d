"""Prometheus metrics of one hub, in a registry of its own (several hubs may share a process)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


class _Traffic(Collector):
    """Frames and bytes in and out: plain integers on the hot path, read at scrape time."""

    def __init__(self, metrics: HubMetrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        yield CounterMetricFamily("hubbub_frames_in", "Frames received from clients", m.frames_in)
        yield CounterMetricFamily("hubbub_bytes_in", "Bytes received from clients", m.bytes_in)
        yield CounterMetricFamily(
            "hubbub_frames_out", "Channel events queued to clients", m.frames_out
        )
        yield CounterMetricFamily(
            "hubbub_bytes_out", "Bytes of channel events queued to clients", m.bytes_out
        )


class HubMetrics:
    """The figures operators watch: connections, traffic, overflows, recoveries, latency."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.connections = Gauge("hubbub_connections", "Open WebSocket connections", registry=r)
        self.connections_total = Counter(
            "hubbub_connections_opened", "Connections accepted", registry=r
        )
        self.subscriptions = Gauge(
            "hubbub_subscriptions", "Channel subscriptions on this node", registry=r
        )
        # Counted for every frame, so plain integers (a prometheus Counter takes a lock).
        self.frames_in = 0
        self.bytes_in = 0
        self.frames_out = 0
        self.bytes_out = 0
        r.register(_Traffic(self))
        self.publications = Counter("hubbub_publications", "Publications", registry=r)
        self.queue_overflows = Counter(
            "hubbub_queue_overflows", "Connections closed for a full send queue", registry=r
        )
        self.recoveries = Counter(
            "hubbub_recoveries", "Subscriptions with `since`", ["result"], registry=r
        )
        self.errors = Counter("hubbub_errors", "Error frames sent", ["code"], registry=r)
        self.publish_latency = Histogram(
            "hubbub_publish_to_send_seconds",
            "From publish to the frames being handed to every local subscriber",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
