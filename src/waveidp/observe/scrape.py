"""A node exporter's exposition read back into a `NodeSample`: what the gateway keeps per node.

It reads what `wave exporter` writes (`observe.exposition`, the same field table both ways),
dcgm-exporter's GPU series (the same names; older releases call the clocks-event bitmask
`DCGM_FI_DEV_CLOCK_THROTTLE_REASONS`, omit `DCGM_FI_DEV_FB_TOTAL`, and send DCGM's "blank"
sentinels for a field the GPU does not report) and node_exporter's host series. Everything else
in the text (node_exporter's other collectors, DCGM profiling fields) is dropped before parsing:
prometheus-client's text parser is pure Python, and a full node_exporter page takes it ~15 ms.

A series that is absent leaves its field `None`, as the exporter would have it; a GPU is a
`gpu` label (one entry per MIG instance where dcgm-exporter labels them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from waveidp.observe.exposition import DCGM_GAUGES, ENERGY, MEMORY
from waveidp.observe.host import busy_and_total, busy_percent
from waveidp.observe.samples import GpuSample, HostSample, JetsonSample, NodeSample, RaplZone, SourceState

_KEPT = (
    "DCGM_FI_DEV_",
    "node_cpu_seconds_total",
    "node_memory_",
    "node_load",
    "node_rapl_",
    "wave_gpu_xid_errors",
    "wave_jetson_",
    "wave_exporter_",
)
_GPU_FIELDS = {f.name: f for f in (*DCGM_GAUGES, ENERGY)}
_GPU_FIELDS["DCGM_FI_DEV_CLOCK_THROTTLE_REASONS"] = _GPU_FIELDS["DCGM_FI_DEV_CLOCKS_EVENT_REASONS"]
_INTEGER = {"memory_used_bytes", "memory_free_bytes", "memory_reserved_bytes", "memory_total_bytes"}
_INTEGER |= {"energy_mj", "clocks_event_reasons", "last_xid"}
_MEMORY = {f.name: f.attribute for f in MEMORY}
_HOST_NEEDS = (
    "memory_total_bytes",
    "memory_available_bytes",
    "memory_free_bytes",
    "swap_total_bytes",
    "swap_free_bytes",
)

# DCGM's "no value" sentinels (dcgm_structs.h): *_BLANK and the NOT_FOUND / NOT_SUPPORTED /
# NOT_PERMISSIONED values just above it, for 32- and 64-bit integers and doubles.
_INT32_BLANK = 0x7FFFFFF0
_INT64_BLANK = 0x7FFFFFFFFFFFFFF0
_FP64_BLANK = 140737488355328.0


def _blank(value: float, field: str) -> bool:
    if value >= _INT64_BLANK or _FP64_BLANK <= value <= _FP64_BLANK + 3:
        return True
    # a 32-bit field's sentinel; the energy counter is 64-bit and passes 2**31 mJ in days
    return field != ENERGY.attribute and _INT32_BLANK <= value <= _INT32_BLANK + 3


def relevant(text: str) -> str:
    """The lines of `text` this module reads (their samples, HELP and TYPE), nothing else."""
    keep = []
    for line in text.splitlines():
        name = line[7:] if line.startswith(("# HELP ", "# TYPE ")) else line
        if name.startswith(_KEPT):
            keep.append(line)
    return "\n".join(keep) + "\n"


def parse_exposition(
    text: str, *, previous: NodeSample | None = None, received_at: float | None = None
) -> NodeSample:
    """The sample in one exporter's answer. `previous` (the node's last sample) gives the CPU busy
    share between the two; `received_at` (Unix time, default now) dates an answer that carries no
    `wave_exporter_last_sample_timestamp_seconds`. Raises ValueError when `text` is not a
    Prometheus exposition."""
    gpus: dict[tuple[str, str, str], dict[str, Any]] = {}
    memory: dict[str, int] = {}
    cpu: dict[tuple[str, str], float] = {}
    load: dict[str, float] = {}
    rapl: list[RaplZone] = []
    rails: dict[str, float] = {}
    rails_avg: dict[str, float] = {}
    temps: dict[str, float] = {}
    sources: dict[str, SourceState] = {}
    meta: dict[str, float] = {}
    hostname = driver = ""
    for family in text_string_to_metric_families(relevant(text)):
        for s in family.samples:
            name, labels, value = s.name, s.labels, s.value
            if name in _GPU_FIELDS or name == "wave_gpu_xid_errors_total":
                if "gpu" not in labels:
                    continue  # not tied to one GPU
                hostname = hostname or labels.get("Hostname", "")
                driver = driver or labels.get("DCGM_FI_DRIVER_VERSION", "")
                gpu = gpus.setdefault(
                    (labels["gpu"], labels.get("UUID", ""), labels.get("GPU_I_ID", "")), _gpu_entry(labels)
                )
                if name == "wave_gpu_xid_errors_total":
                    if labels.get("xid", "").isdigit():
                        gpu["xid_counts"][int(labels["xid"])] = int(value)
                    continue
                f = _GPU_FIELDS[name]
                if not _blank(value, f.attribute):
                    v = value * f.unit
                    gpu[f.attribute] = round(v) if f.attribute in _INTEGER else v
            elif name == "node_cpu_seconds_total":
                cpu[(labels.get("cpu", ""), labels.get("mode", ""))] = float(value)
            elif name in _MEMORY:
                memory[_MEMORY[name]] = round(value)
            elif name in ("node_load1", "node_load5", "node_load15"):
                load[name] = value
            elif name.startswith("node_rapl_") and name.endswith("_joules_total"):
                zone = name.removeprefix("node_rapl_").removesuffix("_joules_total")
                rapl.append(RaplZone(zone, labels.get("index", ""), labels.get("path", ""), value))
            elif name == "wave_jetson_rail_power_watts":
                rails[labels.get("rail", "")] = value * 1000
            elif name == "wave_jetson_rail_average_power_watts":
                rails_avg[labels.get("rail", "")] = value * 1000
            elif name == "wave_jetson_temperature_celsius":
                temps[labels.get("sensor", "")] = value
            elif name == "wave_exporter_source_available":
                sources[labels.get("source", "")] = SourceState(value > 0)
            elif name.startswith("wave_exporter_"):
                meta[name] = value
    host = None
    if all(k in memory for k in _HOST_NEEDS):
        before = previous.host if previous is not None else None
        host = HostSample(
            cpu_count=len({core for core, _ in cpu}),
            cpu_seconds=cpu,
            cpu_percent=busy_percent(
                busy_and_total(before.cpu_seconds) if before is not None else None, busy_and_total(cpu)
            ),
            memory_total_bytes=memory["memory_total_bytes"],
            memory_available_bytes=memory["memory_available_bytes"],
            memory_free_bytes=memory["memory_free_bytes"],
            memory_buffers_bytes=memory.get("memory_buffers_bytes"),
            memory_cached_bytes=memory.get("memory_cached_bytes"),
            swap_total_bytes=memory["swap_total_bytes"],
            swap_free_bytes=memory["swap_free_bytes"],
            load=(load["node_load1"], load["node_load5"], load["node_load15"]) if len(load) == 3 else None,
            rapl=tuple(rapl),
        )
    return NodeSample(
        taken_at=meta.get(
            "wave_exporter_last_sample_timestamp_seconds",
            received_at if received_at is not None else time.time(),
        ),
        duration_s=meta.get("wave_exporter_sample_duration_seconds", 0.0),
        hostname=hostname,
        driver_version=driver,
        host=host,
        gpus=tuple(_gpu(entry) for _, entry in sorted(gpus.items(), key=lambda kv: _order(kv[0]))),
        jetson=JetsonSample(rails, rails_avg or dict(rails), temps) if rails or temps else None,
        sources=sources,
    )


def _gpu_entry(labels: dict[str, str]) -> dict[str, Any]:
    device = labels.get("device", "")
    name = labels.get("modelName", "")
    if labels.get("GPU_I_PROFILE"):
        name = f"{name} MIG {labels['GPU_I_PROFILE']}"
    return {
        "index": int(labels["gpu"]) if labels["gpu"].isdigit() else 0,
        "name": name,
        "source": "tegrastats" if device.startswith("tegra") else "nvml",
        "uuid": labels.get("UUID", ""),
        "pci_bus_id": labels.get("pci_bus_id", ""),
        "device": device,
        "unified_memory": device.startswith("tegra"),
        "xid_counts": {},
    }


def _gpu(entry: dict[str, Any]) -> GpuSample:
    used, free = entry.get("memory_used_bytes"), entry.get("memory_free_bytes")
    if entry.get("memory_total_bytes") is None and used is not None and free is not None:
        # dcgm-exporter's default counters have no FB_TOTAL: used + free (+ reserved) is the whole
        entry["memory_total_bytes"] = used + free + (entry.get("memory_reserved_bytes") or 0)
    return GpuSample(**entry)


def _order(key: tuple[str, str, str]) -> tuple[int, str, str]:
    gpu, uuid, instance = key
    return (int(gpu) if gpu.isdigit() else 0, uuid, instance)


def merge(samples: Sequence[NodeSample]) -> NodeSample:
    """One node's sample from several exporters (DCGM exporter for the GPUs beside
    `wave exporter --no-gpu` or node_exporter for the host): the first that has host figures gives
    them, the first that has GPUs gives those."""
    if len(samples) == 1:
        return samples[0]
    host = next((s.host for s in samples if s.host is not None), None)
    with_gpus = next((s for s in samples if s.gpus), None)
    sources: dict[str, SourceState] = {}
    for s in samples:
        for name, state in s.sources.items():
            sources[name] = state if state.available else sources.get(name, state)
    return NodeSample(
        taken_at=min(s.taken_at for s in samples),
        duration_s=max(s.duration_s for s in samples),
        hostname=next((s.hostname for s in samples if s.hostname), ""),
        driver_version=with_gpus.driver_version if with_gpus else "",
        host=host,
        gpus=with_gpus.gpus if with_gpus else (),
        jetson=next((s.jetson for s in samples if s.jetson is not None), None),
        sources=sources,
    )


def has_figures(sample: NodeSample) -> bool:
    """Whether the sample holds any device or host figure (an exporter stuck on a device serves
    only its own series)."""
    return sample.host is not None or bool(sample.gpus)
