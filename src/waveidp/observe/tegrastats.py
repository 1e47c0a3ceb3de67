"""Jetson telemetry from `tegrastats`: a parser for its lines and a reader that keeps the last one.

tegrastats prints one line per interval. Its fields changed across L4T releases (rails with and
without `mW`, `GR3D_FREQ 0%@[305]` on JetPack 6 against `GR3D_FREQ 0%@305 GR3D2_FREQ 0%@0` on
JetPack 5, sensors that print `-256C` when powered off), so the parser reads each field on its own
and leaves out what a line does not carry. Field meanings: NVIDIA's "tegrastats Utility" pages of
the Jetson Linux Developer Guide.

Jetson memory is one pool shared by CPU and GPU: the GPU sample's memory is the RAM tegrastats
reports (MB there are MiB: the tool divides /proc/meminfo's kB by 1024), marked `unified_memory`.
GPU power is only set where a rail feeds the GPU alone (`GPU`, `VDD_SYS_GPU`, `POM_5V_GPU`); on
Orin the GPU shares `VDD_CPU_GPU_CV` or `VDD_GPU_SOC` with other blocks, so those stay rails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from waveidp.observe.samples import GpuSample, JetsonSample, SourceState

MIB = 2**20
GPU_ONLY_RAILS = ("GPU", "VDD_GPU", "VDD_SYS_GPU", "POM_5V_GPU")
SENSOR_OFF_C = -256.0  # what tegrastats prints for a thermal zone that is powered down

_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\](?:@(\d+))?")
_EMC = re.compile(r"\bEMC_FREQ (\d+)%(?:@(\d+))?")
_GR3D = re.compile(r"\bGR3D2?_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?")
_TEMP = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/\d+(?:mW)?)?(?=\s|$)")


@dataclass(frozen=True)
class TegraStats:
    """One tegrastats line, in its own units (MiB, %, MHz, degrees C, mW)."""

    ram_used_mib: int | None
    ram_total_mib: int | None
    swap_used_mib: int | None
    swap_total_mib: int | None
    cpu_percent: tuple[float | None, ...]
    emc_percent: float | None
    emc_mhz: float | None
    gpu_percent: float | None
    gpu_mhz: float | None
    temps_c: dict[str, float]
    rails_mw: dict[str, float]
    rails_avg_mw: dict[str, float]


def parse_line(line: str) -> TegraStats | None:
    """The fields of one tegrastats line, or None when the line has none of them."""
    ram = _RAM.search(line)
    swap = _SWAP.search(line)
    cpu = _CPU.search(line)
    emc = _EMC.search(line)
    gr3d = _GR3D.findall(line)
    temps = {name: float(value) for name, value in _TEMP.findall(line) if float(value) > SENSOR_OFF_C}
    rails: dict[str, float] = {}
    rails_avg: dict[str, float] = {}
    for name, now, avg in _RAIL.findall(line):
        if name == "NC":  # a sensor channel that is not connected
            continue
        rails[name], rails_avg[name] = float(now), float(avg)
    if not (ram or gr3d or rails):
        return None
    gpu_percent = gpu_mhz = None
    if gr3d:
        # JetPack 5 on Orin NX prints one GR3D field per GPC; their mean is the GPU's load
        gpu_percent = sum(float(p) for p, _ in gr3d) / len(gr3d)
        clocks = [float(f) for _, freqs in gr3d for f in freqs.split(",") if f]
        gpu_mhz = max(clocks) if clocks else None
    return TegraStats(
        ram_used_mib=int(ram.group(1)) if ram else None,
        ram_total_mib=int(ram.group(2)) if ram else None,
        swap_used_mib=int(swap.group(1)) if swap else None,
        swap_total_mib=int(swap.group(2)) if swap else None,
        cpu_percent=_cpu_loads(cpu.group(1)) if cpu else (),
        emc_percent=float(emc.group(1)) if emc else None,
        emc_mhz=float(emc.group(2)) if emc and emc.group(2) else None,
        gpu_percent=gpu_percent,
        gpu_mhz=gpu_mhz,
        temps_c=temps,
        rails_mw=rails,
        rails_avg_mw=rails_avg,
    )


def _cpu_loads(text: str) -> tuple[float | None, ...]:
    out: list[float | None] = []
    for core in text.split(","):
        core = core.strip()
        out.append(None if core == "off" or "%" not in core else float(core.split("%", 1)[0]))
    return tuple(out)


def _gpu_temp(temps: dict[str, float]) -> float | None:
    for name, value in temps.items():
        if name.lower() == "gpu":
            return value
    return None


def to_samples(stats: TegraStats, model: str) -> tuple[GpuSample, JetsonSample]:
    """The integrated GPU in DCGM's terms, and the rails and sensors that have no DCGM field."""
    used = stats.ram_used_mib * MIB if stats.ram_used_mib is not None else None
    total = stats.ram_total_mib * MIB if stats.ram_total_mib is not None else None
    gpu_rail = next((stats.rails_mw[r] for r in GPU_ONLY_RAILS if r in stats.rails_mw), None)
    gpu = GpuSample(
        index=0,
        name=model,
        source="tegrastats",
        device="tegra0",
        memory_used_bytes=used,
        memory_free_bytes=total - used if used is not None and total is not None else None,
        memory_total_bytes=total,
        unified_memory=True,
        util_percent=stats.gpu_percent,
        memory_util_percent=stats.emc_percent,
        power_w=gpu_rail / 1000 if gpu_rail is not None else None,
        temp_c=_gpu_temp(stats.temps_c),
        sm_clock_mhz=stats.gpu_mhz,
        memory_clock_mhz=stats.emc_mhz,
    )
    return gpu, JetsonSample(
        rails_mw=dict(stats.rails_mw), rails_avg_mw=dict(stats.rails_avg_mw), temps_c=dict(stats.temps_c)
    )


def jetson_model(path: Path = Path("/proc/device-tree/model")) -> str:
    try:
        return path.read_text(errors="replace").strip("\x00\n ") or "NVIDIA Jetson"
    except OSError:
        return "NVIDIA Jetson"


class TegrastatsReader:
    """Runs `tegrastats --interval N` and keeps its last parsed line; reading never waits on it."""

    def __init__(self, binary: str | None = None, interval_s: float = 1.0, model: str | None = None) -> None:
        self.binary = binary
        self.interval_s = interval_s
        self.model = model
        self.lines = 0
        self.unparsed = 0
        self._last: tuple[float, TegraStats] | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._first = threading.Event()

    def open(self) -> SourceState:
        binary = self.binary or shutil.which("tegrastats") or "/usr/bin/tegrastats"
        if not Path(binary).is_file():
            return SourceState(False, "tegrastats not found (not a Jetson)")
        if self.model is None:
            self.model = jetson_model()
        try:
            self._proc = subprocess.Popen(
                [binary, "--interval", str(max(int(self.interval_s * 1000), 100))],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
        except OSError as exc:
            return SourceState(False, f"tegrastats did not start: {exc}")
        self._thread = threading.Thread(target=self._follow, name="wave-tegrastats", daemon=True)
        self._thread.start()
        return SourceState(True, binary)

    def _follow(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            stats = parse_line(line)
            with self._lock:
                self.lines += 1
                if stats is None:
                    self.unparsed += 1
                else:
                    self._last = (time.monotonic(), stats)
                    self._first.set()

    def read(self, max_age_s: float | None = None) -> tuple[GpuSample, JetsonSample] | None:
        """The last line's samples, or None before the first line or when it is older than max_age_s."""
        with self._lock:
            last = self._last
        if last is None:
            return None
        seen, stats = last
        limit = max_age_s if max_age_s is not None else max(5 * self.interval_s, 5.0)
        if time.monotonic() - seen > limit:
            return None
        return to_samples(stats, self.model or "NVIDIA Jetson")

    def read_first(self, timeout_s: float) -> bool:
        """Wait until the first line has been parsed (for one-shot use); False on timeout."""
        return self._first.wait(timeout_s)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread is not None:
            self._thread.join(timeout=5)
