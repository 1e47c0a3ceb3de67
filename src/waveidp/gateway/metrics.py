"""The gateway's Prometheus metrics (base units), in a registry of its own per app.

Under `wave serve --workers N` prometheus-client runs in multiprocess mode (the supervisor sets
PROMETHEUS_MULTIPROC_DIR before a worker imports it): every worker writes its values to files in
that directory and `/metrics`, whichever worker answers, adds up the files of all. Counters and
histograms are summed; each gauge says how its workers' values combine (`multiprocess_mode`).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.registry import Collector

TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# The `model` label of requests for a model no backend serves (404, or a 403 for such a name): the
# client chose the string, and one label per string would grow /metrics without bound.
UNKNOWN_MODEL = "(unknown)"
DURATION_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class GatewayMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._live: list[Collector] = []
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.requests = Counter(
            "wave_requests",
            "Requests answered, by model, backend and HTTP status",
            ["model", "backend", "status"],
            registry=r,
        )
        self.ttft = Histogram(
            "wave_request_ttft_seconds",
            "Time to the first content token (streaming)",
            ["model", "backend"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "wave_request_itl_seconds",
            "Mean inter-token latency of a streamed request",
            ["model", "backend"],
            buckets=ITL_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "wave_request_duration_seconds",
            "Request received to last byte sent",
            ["model", "backend"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "wave_tokens",
            "Tokens by direction (input = prompt, output = completion)",
            ["model", "direction"],
            registry=r,
        )
        # each worker probes every backend itself: 0 when any live worker has it out of rotation
        self.healthy = Gauge(
            "wave_backend_healthy",
            "1 when the backend takes requests",
            ["backend"],
            registry=r,
            multiprocess_mode="livemin",
        )
        self.inflight = Gauge(
            "wave_backend_inflight",
            "Requests the gateway has in flight on the backend",
            ["backend"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.engine_queue = Gauge(
            "wave_backend_engine_queue",
            "Running + waiting requests the engine reports",
            ["backend"],
            registry=r,
            multiprocess_mode="livemax",  # every worker reads the same engine's gauge
        )
        self.decisions = Counter(
            "wave_routing_decisions",
            "Backend chosen first for a request, by policy",
            ["policy", "backend"],
            registry=r,
        )
        self.explorations = Counter(
            "wave_routing_explorations",
            "Requests predicted-latency sent to a backend to refresh an uncertain forecast",
            ["model", "backend"],
            registry=r,
        )
        # The router's learned speed of each backend relative to sizing's prior (2 = twice as fast),
        # and how sure it is (log-sd): set once a second by the health loop, never on a request's path.
        self.speed = Gauge(
            "wave_backend_speed_ratio",
            "Learned speed of the backend relative to the sizing prediction, by phase (decode, prefill)",
            ["model", "backend", "phase"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.uncertainty = Gauge(
            "wave_backend_forecast_uncertainty",
            "Log standard deviation of the router's decode-speed estimate (0.1 is about +-10 %)",
            ["model", "backend"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.retries = Counter(
            "wave_retries", "Requests retried on another backend before the first byte", ["model"], registry=r
        )
        self.resends = Counter(
            "wave_upstream_resends",
            "Requests resent at once on a fresh connection after a pooled one proved stale (not failures)",
            ["backend"],
            registry=r,
        )
        self.connections_closed = Counter(
            "wave_connections_closed",
            "Connections the gateway closed before or instead of an answer: header_timeout, "
            "body_timeout, write_timeout, too_many_connections (one client), refused_body_unread (a "
            "refusal's rest of body left unread: the client's refused_body_bytes_per_minute spent)",
            ["reason"],
            registry=r,
        )
        self.stream_errors = Counter(
            "wave_stream_errors",
            "Streams ended by an error event after the first byte",
            ["model", "backend"],
            registry=r,
        )

        self.limits_unavailable_count = Counter(
            "wave_limits_unavailable",
            "Limit checks Redis could not make, by limit and what the request got (fail open or closed)",
            ["limit", "outcome"],
            registry=r,
        )
        self.audit_spooled = Gauge(
            "wave_audit_spooled_rows",
            "Audit rows waiting in the local spool for the audit table to answer",
            registry=r,
            multiprocess_mode="livesum",
        )

    def limits_unavailable(self, limit: str, outcome: str) -> None:
        """`GuardObserver`: a limit Redis could not check."""
        self.child(self.limits_unavailable_count, limit, outcome).inc()

    def child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, remembered: prometheus-client's lookup takes a lock and ~2 us."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def add_live(self, collector: Collector) -> None:
        """Series read from this process's state at each scrape (the nodes' telemetry): every
        worker holds the same, so under --workers they are written once, beside the totals."""
        self.registry.register(collector)
        self._live.append(collector)

    def forget_backend(self, name: str) -> None:
        """Drop a backend's gauges (it left the gateway): a stale `healthy 1` would outlive it."""
        for gauge in (self.healthy, self.inflight, self.engine_queue):
            with contextlib.suppress(KeyError):
                gauge.remove(name)

    def exposition(self) -> bytes:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory is None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        totals = CollectorRegistry()
        multiprocess.MultiProcessCollector(totals, path=directory)
        for collector in self._live:
            totals.register(collector)
        return generate_latest(totals)
