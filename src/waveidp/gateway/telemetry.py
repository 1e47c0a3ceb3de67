"""The gateway's last GPU and host sample per node, and its Prometheus series.

Each node of the fleet file with `exporter:` URLs gets a `NodeTelemetry`, which the background
loop in `gateway/health.py` fills by scraping those exporters (`wave exporter`, DCGM exporter,
node_exporter) every `gateway.telemetry_interval_s`; the node `wave up` runs on is fed by a
`NodeCollector` in the gateway's own process instead (`local`). Nothing here runs on a request's
path.

A node whose exporter stops answering keeps its last sample, with when it was read and why
nothing newer came ("no telemetry since 12:03:04: http://gpu-box:9401/metrics: cannot connect");
it is then `down`: its figures leave `/metrics` and `Gateway.node_samples`, and routing stops
using them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from waveidp.gateway.backends import BackendState
from waveidp.observe.samples import GpuSample, NodeSample

if TYPE_CHECKING:
    from waveidp.observe import NodeCollector

State = Literal["ok", "down", "waiting"]


def metrics_url(url: str) -> str:
    """An exporter URL as scraped: `/metrics` when it names no path (Prometheus' default)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/metrics")) if parts.path in ("", "/") else url


def shown_url(url: str) -> str:
    """The URL without a password in it (an exporter behind basic auth), for status output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(eq=False)
class NodeTelemetry:
    """One node's telemetry as the gateway last read it."""

    node: str
    exporters: tuple[str, ...] = ()  # metrics URLs scraped for it
    local: bool = False  # fed by this process's own NodeCollector (`wave up`), not scraped
    sample: NodeSample | None = None
    read_at: float | None = None  # Unix time of the last good read
    error: str | None = None  # why the last read gave nothing
    failing_since: float | None = None  # Unix time of the first failed read in a row
    collector: NodeCollector | None = field(default=None, repr=False)  # when `local`, once serving

    def record(self, sample: NodeSample) -> bool:
        """A good read; True when it ends a run of failed ones."""
        recovered = self.error is not None
        self.sample = sample
        self.read_at = time.time()
        self.error = self.failing_since = None
        return recovered

    def fail(self, reason: str) -> bool:
        """A read that gave nothing; True when it starts a run of failed ones (the one to log)."""
        starts = self.error is None
        if starts:
            self.failing_since = time.time()
        self.error = reason
        return starts

    def state(self) -> State:
        if self.error is not None:
            return "down"
        return "ok" if self.sample is not None else "waiting"

    def current(self) -> NodeSample | None:
        """The last sample while the node's reads succeed; None before the first and while down."""
        return self.sample if self.error is None else None

    def status_line(self) -> str:
        if self.error is not None:
            if self.read_at is None:
                return f"no telemetry yet: {self.error}"
            return f"no telemetry since {wall_clock(self.read_at)}: {self.error}"
        if self.read_at is None:
            return "waiting for the first read"
        return f"read {time.time() - self.read_at:.0f} s ago"


def backend_gpus(sample: NodeSample, indices: tuple[int, ...] | None) -> list[GpuSample]:
    """The GPUs of `sample` a backend runs on (`BackendState.gpus`; None: not known, all of them)."""
    return [g for g in sample.gpus if indices is None or g.index in indices]


def wall_clock(unix: float) -> str:
    """A Unix time as people read it in a status line (local HH:MM:SS)."""
    return time.strftime("%H:%M:%S", time.localtime(unix))


# (name, help, how to read it off a GpuSample); base units, as the gateway's other series
_GPU_SERIES = (
    ("wave_node_gpu_memory_used_bytes", "GPU memory in use", lambda g: g.memory_used_bytes),
    ("wave_node_gpu_memory_total_bytes", "GPU memory in all", lambda g: g.memory_total_bytes),
    (
        "wave_node_gpu_utilization_ratio",
        "Share of time the GPU was busy (0-1)",
        lambda g: g.util_percent / 100 if g.util_percent is not None else None,
    ),
    ("wave_node_gpu_power_watts", "GPU power draw", lambda g: g.power_w),
    ("wave_node_gpu_temperature_celsius", "GPU temperature", lambda g: g.temp_c),
    (
        "wave_node_gpu_clocks_event_reasons",
        "NVML's clocks-event (throttle) reason bitmask",
        lambda g: g.clocks_event_reasons,
    ),
)
_GPU_LABELS = ("node", "gpu", "uuid", "model_name")


class TelemetryMetrics(Collector):
    """The nodes' telemetry on the gateway's `/metrics`, from the last reads (never a scrape).

    `wave_node_telemetry_up` is 1 while a node's reads succeed; a node that is down keeps only that
    and `wave_node_telemetry_age_seconds` (how old its last good sample is), not figures that
    are no longer current. Named `wave_node_*` so that a Prometheus scraping both the gateway and
    the exporters does not get every DCGM series twice.
    """

    def __init__(self, nodes: Mapping[str, NodeTelemetry], backends: Sequence[BackendState]) -> None:
        self.nodes = nodes
        self.backends = backends

    def collect(self) -> Iterator[Metric]:
        nodes = list(self.nodes.values())
        up = GaugeMetricFamily(
            "wave_node_telemetry_up", "1 while the node's telemetry reads succeed", labels=["node"]
        )
        age = GaugeMetricFamily(
            "wave_node_telemetry_age_seconds", "Age of the node's last good telemetry sample", labels=["node"]
        )
        now = time.time()
        for t in nodes:
            up.add_metric([t.node], 1.0 if t.state() == "ok" else 0.0)
            if t.sample is not None:
                age.add_metric([t.node], max(0.0, now - t.sample.taken_at))
        yield up
        yield age
        current = [(t.node, s) for t in nodes if (s := t.current()) is not None]
        for name, doc, read in _GPU_SERIES:
            fam = GaugeMetricFamily(name, doc, labels=_GPU_LABELS)
            for node, s in current:
                for g in s.gpus:
                    value = read(g)
                    if value is not None:
                        fam.add_metric([node, str(g.index), g.uuid, g.name], float(value))
            yield fam
        mem_used = GaugeMetricFamily("wave_node_memory_used_bytes", "Host memory in use", labels=["node"])
        mem_total = GaugeMetricFamily("wave_node_memory_total_bytes", "Host memory in all", labels=["node"])
        cpu = GaugeMetricFamily("wave_node_cpu_busy_ratio", "Share of CPU time busy (0-1)", labels=["node"])
        for node, s in current:
            if s.host is not None:
                mem_used.add_metric([node], s.host.memory_used_bytes)
                mem_total.add_metric([node], s.host.memory_total_bytes)
                if s.host.cpu_percent is not None:
                    cpu.add_metric([node], s.host.cpu_percent / 100)
        yield from (mem_used, mem_total, cpu)
        pressure = GaugeMetricFamily(
            "wave_backend_gpu_pressure",
            "1 while routing puts the backend behind others (GPU memory nearly full, clocks slowed)",
            labels=["backend", "reason"],
        )
        for b in self.backends:
            if b.gpu_pressure:
                pressure.add_metric([b.name, b.gpu_pressure], 1.0)
        yield pressure
