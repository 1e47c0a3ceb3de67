"""Device telemetry sampled during a load point, by the node collector `wave exporter` uses.

GPU: NVML where it loads (power, memory used, utilization, SM clock; energy from the driver's
total-energy counter where the GPU has one, else the power samples integrated), or a Jetson's
tegrastats. CPU/RAM always; CPU package energy from Linux RAPL (powercap) when it is readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from waveidp.bench.report import GpuSample, TelemetrySample, TelemetrySummary
from waveidp.observe import NodeCollector, NodeSample, NvmlReader, RaplZone


def _package_j(zones: tuple[RaplZone, ...]) -> float | None:
    pkgs = [z for z in zones if z.name == "package"]
    return sum(z.energy_j for z in pkgs) if pkgs else None


def _delta_j(a: float | None, b: float | None, wrap: float | None) -> float | None:
    if a is None or b is None:
        return None
    if b >= a:
        return b - a
    return b + wrap - a if wrap else None  # the counter wrapped once


@dataclass
class Telemetry:
    interval_s: float = 0.5
    samples: list[TelemetrySample] = field(default_factory=list)
    gpu_names: list[str] = field(default_factory=list)
    nvml_error: str | None = None
    nvml_module: Any = None  # pynvml, or a stand-in for tests
    _collector: NodeCollector | None = None
    _first: NodeSample | None = None
    _last: NodeSample | None = None
    _t0: float = 0.0
    _t1: float = 0.0

    def start(self) -> None:
        self._collector = NodeCollector(
            self.interval_s, nvml=NvmlReader(self.nvml_module, watch_xid=False), on_sample=self._record
        )
        self._t0 = perf_counter()
        self._first = self._collector.open()
        self.samples.clear()  # the opening read is the baseline for the energy counters, not a sample
        nvml = self._collector.sources["nvml"]
        self.nvml_error = None if nvml.available else nvml.detail
        self.gpu_names = self._collector.nvml.gpu_names
        self._collector.start()

    def stop(self) -> None:
        if self._collector is None:
            return
        self._collector.stop()
        self._t1 = perf_counter()
        self._last = self._collector.sample()
        self.samples.pop()  # the closing read, as the opening one, only bounds the counters
        self._collector.close()

    def _record(self, s: NodeSample) -> None:
        sample = TelemetrySample(t=perf_counter() - self._t0)
        if s.host is not None:
            sample.cpu_percent = s.host.cpu_percent
            sample.ram_used_bytes = s.host.memory_used_bytes
        if s.gpus:
            sample.gpus = [
                GpuSample(
                    power_w=g.power_w,
                    memory_used_bytes=g.memory_used_bytes,
                    util_percent=g.util_percent,
                    sm_clock_mhz=g.sm_clock_mhz,
                )
                for g in s.gpus
            ]
        self.samples.append(sample)

    def summary(self, output_tokens: int, price_kwh: float | None) -> TelemetrySummary:
        """Energy over the load point and what it means per token."""
        seconds = max(self._t1 - self._t0, 1e-9)
        first, last = self._first, self._last
        gpu_j: float | None = None
        source = None
        if first is not None and last is not None and first.gpus:
            deltas = [
                (b.energy_mj - a.energy_mj) / 1000
                for a, b in zip(first.gpus, last.gpus, strict=False)
                if a.energy_mj is not None and b.energy_mj is not None
            ]
            if deltas and len(deltas) == len(first.gpus):
                gpu_j, source = sum(deltas), "nvml-energy-counter"
            else:
                powers = [
                    sum(g.power_w or 0 for g in s.gpus or [])
                    for s in self.samples
                    if any(g.power_w is not None for g in s.gpus or [])
                ]
                if powers:
                    gpu_j, source = sum(powers) / len(powers) * seconds, "gpu-power-samples"
        cpu_j = None
        if first is not None and last is not None and first.host is not None and last.host is not None:
            wrap = sum(z.max_energy_j or 0 for z in first.host.rapl if z.name == "package") or None
            cpu_j = _delta_j(_package_j(first.host.rapl), _package_j(last.host.rapl), wrap)
        total_j = (gpu_j or 0) + (cpu_j or 0) if (gpu_j is not None or cpu_j is not None) else None
        ram = [s.ram_used_bytes for s in self.samples if s.ram_used_bytes is not None]
        cost = None
        if total_j and price_kwh is not None and output_tokens:
            cost = total_j / 3.6e6 * price_kwh / output_tokens * 1e6
        out = TelemetrySummary(
            seconds=seconds,
            gpus=self.gpu_names,
            nvml=self.nvml_error or "ok",
            gpu_energy_j=gpu_j,
            gpu_energy_source=source,
            cpu_energy_j=cpu_j,
            cpu_energy_source="rapl" if cpu_j is not None else "unavailable (RAPL not readable)",
            energy_j=total_j,
            mean_power_w=total_j / seconds if total_j is not None else None,
            tokens_per_joule=output_tokens / total_j if total_j else None,
            cost_per_million_tokens=cost,
            price_kwh=price_kwh,
            cpu_percent_mean=_mean([s.cpu_percent for s in self.samples if s.cpu_percent is not None]),
            ram_used_bytes_max=max(ram, default=None),
        )
        gpu_samples = [s.gpus for s in self.samples if s.gpus]
        if gpu_samples:
            out.gpu_memory_used_bytes_max = max(
                sum(g.memory_used_bytes or 0 for g in gpus) for gpus in gpu_samples
            )
            out.gpu_util_percent_mean = _mean(
                [sum(g.util_percent or 0 for g in gpus) / len(gpus) for gpus in gpu_samples]
            )
        return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
