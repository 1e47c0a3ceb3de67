"""What one read of a node's devices holds: typed, in base units, with `None` for "not reported".

These are the figures the exporter publishes, the bench integrates and the gateway (and its
console) keeps per node. A field is `None` when the device or driver does not report it, never
a made-up zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

GpuSource = Literal["nvml", "tegrastats"]

# NVML's clocks-event (throttle) reason bits, named as nvml.h names them
CLOCKS_EVENT_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
# The reasons that mean a GPU is slowed by heat or an external power brake (hw_slowdown,
# sw_thermal_slowdown, hw_thermal_slowdown, hw_power_brake_slowdown): the GPUClocksThrottled alert
# and the router's headroom hook. The power cap and idle are a GPU working as configured.
SLOWDOWN_REASONS = (0x8, 0x20, 0x40, 0x80)


@dataclass(frozen=True)
class GpuSample:
    """One GPU (a discrete NVIDIA GPU through NVML, or a Jetson's integrated GPU through tegrastats)."""

    index: int
    name: str
    source: GpuSource
    uuid: str = ""
    pci_bus_id: str = ""
    device: str = ""
    memory_used_bytes: int | None = None
    memory_free_bytes: int | None = None
    memory_reserved_bytes: int | None = None
    memory_total_bytes: int | None = None
    unified_memory: bool = False
    util_percent: float | None = None
    memory_util_percent: float | None = None
    encoder_util_percent: float | None = None
    decoder_util_percent: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    energy_mj: int | None = None
    temp_c: float | None = None
    memory_temp_c: float | None = None
    sm_clock_mhz: float | None = None
    memory_clock_mhz: float | None = None
    clocks_event_reasons: int | None = None
    last_xid: int | None = None
    xid_counts: dict[int, int] = field(default_factory=dict)

    @property
    def memory_headroom_bytes(self) -> int | None:
        """Memory a new allocation can still take (on a Jetson: the shared RAM still free)."""
        return self.memory_free_bytes

    @property
    def memory_headroom_share(self) -> float | None:
        """`memory_headroom_bytes` as a share (0-1) of the memory total."""
        free, total = self.memory_free_bytes, self.memory_total_bytes
        return min(1.0, max(0.0, free / total)) if free is not None and total else None


@dataclass(frozen=True)
class RaplZone:
    """One Linux powercap (RAPL) zone's energy counter."""

    name: str
    index: str
    path: str
    energy_j: float
    max_energy_j: float | None = None


@dataclass(frozen=True)
class HostSample:
    """CPU, memory and CPU package energy as the OS reports them."""

    cpu_count: int
    cpu_seconds: dict[tuple[str, str], float]
    cpu_percent: float | None
    memory_total_bytes: int
    memory_available_bytes: int
    memory_free_bytes: int
    memory_buffers_bytes: int | None
    memory_cached_bytes: int | None
    swap_total_bytes: int
    swap_free_bytes: int
    load: tuple[float, float, float] | None
    rapl: tuple[RaplZone, ...] = ()

    @property
    def memory_used_bytes(self) -> int:
        return self.memory_total_bytes - self.memory_available_bytes


@dataclass(frozen=True)
class JetsonSample:
    """The parts of a tegrastats line that have no DCGM counterpart (power rails, thermal zones)."""

    rails_mw: dict[str, float]
    rails_avg_mw: dict[str, float]
    temps_c: dict[str, float]


@dataclass(frozen=True)
class SourceState:
    """Whether a telemetry source is in use on this node, and if not, why (absence is not an error)."""

    available: bool
    detail: str = ""


@dataclass(frozen=True)
class NodeSample:
    """Everything one collection round read on a node."""

    taken_at: float
    duration_s: float
    hostname: str
    driver_version: str
    host: HostSample | None
    gpus: tuple[GpuSample, ...]
    jetson: JetsonSample | None
    sources: dict[str, SourceState]
