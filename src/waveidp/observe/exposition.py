"""A node sample as Prometheus metric families, named as DCGM exporter and node_exporter name them.

GPU figures use dcgm-exporter's field names, units and labels (`DCGM_FI_DEV_FB_USED` in MiB with
`gpu`, `UUID`, `pci_bus_id`, `device`, `modelName`, `Hostname`, `DCGM_FI_DRIVER_VERSION`; see its
etc/default-counters.csv), so dashboards and alert rules work over either exporter. Host figures
use node_exporter's names (`node_cpu_seconds_total`, `node_memory_MemAvailable_bytes`,
`node_rapl_package_joules_total`). What neither has is `wave_*`.

DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION is a counter without a `_total` suffix in dcgm-exporter;
prometheus-client writes every counter with `_total`, so it is exposed untyped under DCGM's exact
name (`rate()` works the same).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from waveidp.observe.samples import CLOCKS_EVENT_REASONS, GpuSample, HostSample, NodeSample

MIB = 2**20
DCGM_LABELS = ("gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION")


@dataclass(frozen=True)
class Field:
    """One series of a sample's field: its name and help as the original exporter writes them, the
    sample attribute it holds, and how many of the sample's units one unit of the series is
    (MiB -> bytes). The scrape (`observe.scrape`) reads the same table back."""

    name: str
    help: str
    attribute: str
    unit: int = 1


# dcgm-exporter's gauges (etc/default-counters.csv), in its order
DCGM_GAUGES: tuple[Field, ...] = (
    Field("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).", "sm_clock_mhz"),
    Field("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).", "memory_clock_mhz"),
    Field("DCGM_FI_DEV_MEMORY_TEMP", "Memory temperature (in C).", "memory_temp_c"),
    Field("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).", "temp_c"),
    Field("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", "power_w"),
    Field("DCGM_FI_DEV_POWER_MGMT_LIMIT", "Power management limit (in W).", "power_limit_w"),
    Field("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", "util_percent"),
    Field("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).", "memory_util_percent"),
    Field("DCGM_FI_DEV_ENC_UTIL", "Encoder utilization (in %).", "encoder_util_percent"),
    Field("DCGM_FI_DEV_DEC_UTIL", "Decoder utilization (in %).", "decoder_util_percent"),
    Field("DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered.", "last_xid"),
    Field("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).", "memory_free_bytes", MIB),
    Field("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).", "memory_used_bytes", MIB),
    Field("DCGM_FI_DEV_FB_RESERVED", "Framebuffer memory reserved (in MiB).", "memory_reserved_bytes", MIB),
    Field("DCGM_FI_DEV_FB_TOTAL", "Framebuffer memory total (in MiB).", "memory_total_bytes", MIB),
    Field(
        "DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
        "Current clock event (throttle) reasons, NVML's bitmask.",
        "clocks_event_reasons",
    ),
)
ENERGY = Field(
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "Total energy consumption since boot (in mJ).", "energy_mj"
)

MEMORY: tuple[Field, ...] = tuple(
    Field(f"node_memory_{name}_bytes", f"Memory information field {name}_bytes.", attribute)
    for name, attribute in (
        ("MemTotal", "memory_total_bytes"),
        ("MemAvailable", "memory_available_bytes"),
        ("MemFree", "memory_free_bytes"),
        ("Buffers", "memory_buffers_bytes"),
        ("Cached", "memory_cached_bytes"),
        ("SwapTotal", "swap_total_bytes"),
        ("SwapFree", "swap_free_bytes"),
    )
)


def _series_value(sample: object, f: Field) -> float | None:
    value = getattr(sample, f.attribute)
    return value / f.unit if value is not None else None


def _gpu_labels(g: GpuSample, s: NodeSample) -> list[str]:
    return [str(g.index), g.uuid, g.pci_bus_id, g.device, g.name, s.hostname, s.driver_version]


def gpu_families(s: NodeSample) -> Iterator[Metric]:
    for f in DCGM_GAUGES:
        fam = GaugeMetricFamily(f.name, f.help, labels=DCGM_LABELS)
        for g in s.gpus:
            value = _series_value(g, f)
            if value is not None:
                fam.add_metric(_gpu_labels(g, s), value)
        if fam.samples:
            yield fam
    energy = Metric(ENERGY.name, ENERGY.help, "unknown")
    for g in s.gpus:
        if g.energy_mj is not None:
            energy.add_sample(
                energy.name, dict(zip(DCGM_LABELS, _gpu_labels(g, s), strict=True)), g.energy_mj
            )
    if energy.samples:
        yield energy
    reasons = GaugeMetricFamily(
        "wave_gpu_clocks_event_active",
        "1 while NVML reports this clock event (throttle) reason, else 0.",
        labels=(*DCGM_LABELS, "reason"),
    )
    xids = CounterMetricFamily(
        "wave_gpu_xid_errors",
        "XID errors NVML reported while the exporter was running, by XID.",
        labels=(*DCGM_LABELS, "xid"),
    )
    for g in s.gpus:
        labels = _gpu_labels(g, s)
        if g.clocks_event_reasons is not None:
            for bit, reason in CLOCKS_EVENT_REASONS.items():
                reasons.add_metric([*labels, reason], 1.0 if g.clocks_event_reasons & bit else 0.0)
        for xid, n in sorted(g.xid_counts.items()):
            xids.add_metric([*labels, str(xid)], n)
    yield from (f for f in (reasons, xids) if f.samples)


def jetson_families(s: NodeSample) -> Iterator[Metric]:
    if s.jetson is None:
        return
    rails = GaugeMetricFamily(
        "wave_jetson_rail_power_watts", "Power on a Jetson power rail (tegrastats).", labels=("rail",)
    )
    avg = GaugeMetricFamily(
        "wave_jetson_rail_average_power_watts",
        "Average power on a Jetson power rail since tegrastats started.",
        labels=("rail",),
    )
    for rail, mw in sorted(s.jetson.rails_mw.items()):
        rails.add_metric([rail], mw / 1000)
        avg.add_metric([rail], s.jetson.rails_avg_mw.get(rail, mw) / 1000)
    temps = GaugeMetricFamily(
        "wave_jetson_temperature_celsius", "Jetson thermal zone temperature (tegrastats).", labels=("sensor",)
    )
    for sensor, c in sorted(s.jetson.temps_c.items()):
        temps.add_metric([sensor], c)
    yield from (f for f in (rails, avg, temps) if f.samples)


def host_families(h: HostSample) -> Iterator[Metric]:
    cpu = CounterMetricFamily(
        "node_cpu_seconds", "Seconds the CPUs spent in each mode.", labels=("cpu", "mode")
    )
    for (core, mode), v in sorted(h.cpu_seconds.items(), key=lambda kv: (int(kv[0][0]), kv[0][1])):
        cpu.add_metric([core, mode], v)
    yield cpu
    for f in MEMORY:
        value = _series_value(h, f)
        if value is not None:
            yield GaugeMetricFamily(f.name, f.help, value=value)
    if h.load is not None:
        for minutes, load in zip((1, 5, 15), h.load, strict=True):
            yield GaugeMetricFamily(f"node_load{minutes}", f"{minutes}m load average.", value=load)
    by_name: dict[str, CounterMetricFamily] = {}
    for z in h.rapl:
        fam = by_name.setdefault(
            z.name,
            CounterMetricFamily(
                f"node_rapl_{z.name}_joules",
                f"Current RAPL {z.name} value in joules",
                labels=("index", "path"),
            ),
        )
        fam.add_metric([z.index, z.path], z.energy_j)
    yield from by_name.values()


def meta_families(
    s: NodeSample | None, samples_taken: int, read_errors: dict[str, int], sources: dict[str, Any]
) -> Iterator[Metric]:
    avail = GaugeMetricFamily(
        "wave_exporter_source_available",
        "1 when the telemetry source is in use on this node, 0 when it is absent.",
        labels=("source",),
    )
    for name, state in sorted(sources.items()):
        avail.add_metric([name], 1.0 if state.available else 0.0)
    yield avail
    yield CounterMetricFamily("wave_exporter_samples", "Collection rounds taken.", value=samples_taken)
    errors = CounterMetricFamily(
        "wave_exporter_read_errors", "Reads of a source that raised.", labels=("source",)
    )
    for name in sorted(sources):
        errors.add_metric([name], read_errors.get(name, 0))
    yield errors
    if s is not None:
        yield GaugeMetricFamily(
            "wave_exporter_last_sample_timestamp_seconds",
            "Unix time of the sample these figures come from.",
            value=s.taken_at,
        )
        yield GaugeMetricFamily(
            "wave_exporter_sample_duration_seconds",
            "Time the last collection round took to read every source.",
            value=s.duration_s,
        )


def node_families(s: NodeSample) -> Iterator[Metric]:
    if s.host is not None:
        yield from host_families(s.host)
    yield from gpu_families(s)
    yield from jetson_families(s)


class NodeMetrics(Collector):
    """prometheus-client collector over a NodeCollector's last sample; never reads a device itself.

    A sample older than `stale_after_s` (the collector is stuck on a device) is not served as
    current: only the exporter's own series remain, and their timestamp shows the age.
    """

    def __init__(self, collector: Any, stale_after_s: float) -> None:
        self.collector = collector
        self.stale_after_s = stale_after_s

    def collect(self) -> Iterator[Metric]:
        c = self.collector
        s = c.latest()
        if s is not None and time.time() - s.taken_at <= self.stale_after_s:
            yield from node_families(s)
        yield from meta_families(s, c.samples_taken, c.read_errors, c.sources)
