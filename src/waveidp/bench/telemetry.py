"""Device telemetry sampled during a load point, in a background thread (NVML and psutil block).

GPU: nvidia-ml-py when NVML loads (power, memory used, utilization, SM clock; energy from the
driver's total-energy counter where the GPU has one, else the power samples integrated). CPU/RAM:
psutil always; CPU package energy from Linux RAPL (powercap) when it is readable.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

import psutil

_RAPL = Path("/sys/class/powercap")


def _rapl_files() -> list[Path]:
    files = []
    for zone in sorted(_RAPL.glob("intel-rapl:*")):
        if zone.name.count(":") == 1 and (zone / "energy_uj").exists():
            files.append(zone / "energy_uj")
    return files


def _read_rapl_uj(files: list[Path]) -> float | None:
    try:
        return float(sum(int(f.read_text()) for f in files)) if files else None
    except OSError:
        return None


@dataclass
class Telemetry:
    interval_s: float = 0.5
    samples: list[dict[str, Any]] = field(default_factory=list)
    gpu_names: list[str] = field(default_factory=list)
    nvml_error: str | None = None
    _handles: list[Any] = field(default_factory=list)
    _energy_start_mj: list[int | None] = field(default_factory=list)
    _energy_end_mj: list[int | None] = field(default_factory=list)
    _rapl: list[Path] = field(default_factory=list)
    _rapl_start: float | None = None
    _rapl_end: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = 0.0
    _t1: float = 0.0

    def start(self) -> None:
        self._init_nvml()
        self._rapl = _rapl_files()
        self._rapl_start = _read_rapl_uj(self._rapl)
        self._energy_start_mj = [self._energy(h) for h in self._handles]
        psutil.cpu_percent(None)
        self._t0 = perf_counter()
        self._thread = threading.Thread(target=self._loop, name="wave-telemetry", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._t1 = perf_counter()
        self._energy_end_mj = [self._energy(h) for h in self._handles]
        self._rapl_end = _read_rapl_uj(self._rapl)
        if self._handles:
            import pynvml

            pynvml.nvmlShutdown()

    def _init_nvml(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.gpu_names = [str(pynvml.nvmlDeviceGetName(h)) for h in self._handles]
        except Exception as exc:  # NVML missing or no driver: CPU-only telemetry
            self.nvml_error = f"{type(exc).__name__}: {exc}"
            self._handles = []

    @staticmethod
    def _energy(handle: Any) -> int | None:
        import pynvml

        try:
            return int(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        except pynvml.NVMLError:
            return None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(self._sample())

    def _sample(self) -> dict[str, Any]:
        vm = psutil.virtual_memory()
        sample: dict[str, Any] = {
            "t": perf_counter() - self._t0,
            "cpu_percent": psutil.cpu_percent(None),
            "ram_used_bytes": int(vm.total - vm.available),
        }
        if self._handles:
            import pynvml

            gpus = []
            for h in self._handles:
                g: dict[str, float | None] = {}
                for key, fn in (
                    ("power_w", lambda h: pynvml.nvmlDeviceGetPowerUsage(h) / 1000),
                    ("memory_used_bytes", lambda h: pynvml.nvmlDeviceGetMemoryInfo(h).used),
                    ("util_percent", lambda h: pynvml.nvmlDeviceGetUtilizationRates(h).gpu),
                    ("sm_clock_mhz", lambda h: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)),
                ):
                    try:
                        g[key] = float(fn(h))
                    except pynvml.NVMLError:
                        g[key] = None
                gpus.append(g)
            sample["gpus"] = gpus
        return sample

    def summary(self, output_tokens: int, price_kwh: float | None) -> dict[str, Any]:
        """Energy over the load point and what it means per token."""
        seconds = max(self._t1 - self._t0, 1e-9)
        gpu_j: float | None = None
        source = None
        if self._handles:
            deltas = [
                (b - a) / 1000
                for a, b in zip(self._energy_start_mj, self._energy_end_mj, strict=False)
                if a is not None and b is not None
            ]
            if deltas and len(deltas) == len(self._handles):
                gpu_j, source = sum(deltas), "nvml-energy-counter"
            else:
                powers = [sum(g["power_w"] or 0 for g in s.get("gpus", [])) for s in self.samples]
                if powers:
                    gpu_j, source = sum(powers) / len(powers) * seconds, "nvml-power-samples"
        cpu_j = None
        if self._rapl_start is not None and self._rapl_end is not None and self._rapl_end >= self._rapl_start:
            cpu_j = (self._rapl_end - self._rapl_start) / 1e6
        total_j = (gpu_j or 0) + (cpu_j or 0) if (gpu_j is not None or cpu_j is not None) else None
        out: dict[str, Any] = {
            "seconds": seconds,
            "gpus": self.gpu_names,
            "nvml": self.nvml_error or "ok",
            "gpu_energy_j": gpu_j,
            "gpu_energy_source": source,
            "cpu_energy_j": cpu_j,
            "cpu_energy_source": "rapl" if cpu_j is not None else "unavailable (RAPL not readable)",
            "energy_j": total_j,
            "mean_power_w": total_j / seconds if total_j is not None else None,
            "tokens_per_joule": output_tokens / total_j if total_j else None,
            "cost_per_million_tokens": None,
            "price_kwh": price_kwh,
            "cpu_percent_mean": _mean([s["cpu_percent"] for s in self.samples]),
            "ram_used_bytes_max": max((s["ram_used_bytes"] for s in self.samples), default=None),
        }
        if total_j and price_kwh is not None and output_tokens:
            out["cost_per_million_tokens"] = total_j / 3.6e6 * price_kwh / output_tokens * 1e6
        if self._handles:
            out["gpu_memory_used_bytes_max"] = max(
                (sum(g["memory_used_bytes"] or 0 for g in s["gpus"]) for s in self.samples), default=None
            )
            out["gpu_util_percent_mean"] = _mean(
                [sum(g["util_percent"] or 0 for g in s["gpus"]) / len(s["gpus"]) for s in self.samples]
            )
        return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None
