"""CPU, memory and CPU package energy from the OS: psutil for /proc, Linux powercap for RAPL.

RAPL's `energy_uj` files are readable by root only on kernels since 5.10 (CVE-2020-8694); where
none is readable (not root, AMD before Zen, a VM, a container without /sys) the zones are simply
absent. CPU busy share is computed between two reads of /proc/stat, so the first read has none.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import psutil

from waveidp.observe.samples import HostSample, RaplZone, SourceState

POWERCAP = Path("/sys/class/powercap")
# node_exporter's cpu modes; guest time is already inside user time
CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def busy_and_total(cpu_seconds: Mapping[tuple[str, str], float]) -> tuple[float, float]:
    """(busy, total) CPU seconds over every core; idle and iowait are not busy."""
    busy = sum(v for (_, mode), v in cpu_seconds.items() if mode not in ("idle", "iowait"))
    return busy, sum(cpu_seconds.values())


def busy_percent(before: tuple[float, float] | None, after: tuple[float, float]) -> float | None:
    """CPU busy share (0-100) between two `busy_and_total` reads; None without an earlier one."""
    if before is None or after[1] <= before[1]:
        return None
    share = (after[0] - before[0]) / (after[1] - before[1])
    return 100 * min(max(share, 0.0), 1.0)  # float sums can land a hair past 100


def rapl_zones(root: Path = POWERCAP) -> list[Path]:
    """Zone folders with an energy counter (intel-rapl:0, intel-rapl:0:0, ...; not the mmio duplicates)."""
    return sorted(p for p in root.glob("intel-rapl:*") if (p / "energy_uj").exists())


def read_rapl(zones: list[Path]) -> tuple[RaplZone, ...]:
    out = []
    for z in zones:
        try:
            energy_uj = int((z / "energy_uj").read_text())
            label = (z / "name").read_text().strip()
        except (OSError, ValueError):
            continue  # unreadable (not root) or gone
        try:
            max_j: float | None = int((z / "max_energy_range_uj").read_text()) / 1e6
        except (OSError, ValueError):
            max_j = None
        m = re.fullmatch(r"([a-z]+)-(\d+)", label)  # package-0 -> ("package", "0")
        name, index = (m.group(1), m.group(2)) if m else (label, z.name.rsplit(":", 1)[-1])
        out.append(RaplZone(re.sub(r"\W", "_", name), index, str(z), energy_uj / 1e6, max_j))
    return tuple(out)


class HostReader:
    def __init__(self, powercap: Path = POWERCAP) -> None:
        self.powercap = powercap
        self._zones: list[Path] = []
        self._prev_busy: tuple[float, float] | None = None

    def open(self) -> tuple[SourceState, SourceState]:
        """(host, rapl) availability; the host is always there, RAPL where a counter is readable."""
        self._zones = rapl_zones(self.powercap)
        readable = read_rapl(self._zones)
        if readable:
            rapl = SourceState(True, ", ".join(f"{z.name}-{z.index}" for z in readable))
        elif self._zones:
            rapl = SourceState(False, f"{self.powercap} energy counters are not readable (needs root)")
        else:
            rapl = SourceState(False, f"no RAPL zones under {self.powercap}")
        return SourceState(True, f"{psutil.cpu_count() or 0} CPUs"), rapl

    def read(self) -> HostSample:
        per_cpu = psutil.cpu_times(percpu=True)
        seconds = {
            (str(i), mode): float(getattr(t, mode))
            for i, t in enumerate(per_cpu)
            for mode in CPU_MODES
            if hasattr(t, mode)
        }
        now = busy_and_total(seconds)
        percent = busy_percent(self._prev_busy, now)
        self._prev_busy = now
        vm = psutil.virtual_memory()
        sw = psutil.swap_memory()
        try:
            load: tuple[float, float, float] | None = os.getloadavg()
        except OSError:
            load = None
        return HostSample(
            cpu_count=len(per_cpu),
            cpu_seconds=seconds,
            cpu_percent=percent,
            memory_total_bytes=int(vm.total),
            memory_available_bytes=int(vm.available),
            memory_free_bytes=int(vm.free),
            memory_buffers_bytes=int(vm.buffers) if hasattr(vm, "buffers") else None,
            memory_cached_bytes=int(vm.cached) if hasattr(vm, "cached") else None,
            swap_total_bytes=int(sw.total),
            swap_free_bytes=int(sw.free),
            load=load,
            rapl=read_rapl(self._zones),
        )
