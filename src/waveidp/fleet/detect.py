"""Describe this machine as a fleet node: CPU, memory, NVIDIA GPUs, NPUs, Jetson SoCs.

The parsers are pure (they take the text of /proc/cpuinfo, /proc/meminfo, ...) so recorded
samples from other machines test them; `detect_local_node` is the only part that reads files
and asks NVML. Names map to hardware catalog ids through `data/detect_names.yaml`.
"""

from __future__ import annotations

import functools
import re
import socket
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from waveidp.catalog import GENERIC_CPU, GENERIC_GPU
from waveidp.catalog._cpu_core import CoreFacts, core_flop_per_cycle
from waveidp.catalog._gpu_sm import fp32_lanes, rated_clock_share, sm_flop_per_cycle
from waveidp.fleet.models import Device, Node
from waveidp.fleet.probe import Bandwidth

# what detection knows better than a curated fleet file; merging into an existing node takes only these
DETECTED_FIELDS = ("devices", "memory_gib")
_GIB = 1024**3


@dataclass(frozen=True)
class CpuInfo:
    name: str
    vendor: str
    logical: int
    cores: int
    flags: frozenset[str]
    family: int | None = None
    model: int | None = None
    mhz: float | None = None  # `cpu MHz`: the current clock on bare metal, the nominal one in most VMs


@dataclass(frozen=True)
class CpuClocks:
    """What /sys/devices/system/cpu says about clocks and caches (absent in many VMs)."""

    base_ghz: float | None = None
    max_ghz: float | None = None
    l2_kib: int | None = None
    l3_mib: float | None = None
    scaling: bool = False  # a cpufreq driver runs, so `cpu MHz` is a momentary clock


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML describes it (`read_nvml_gpus`); the optional fields are absent where the
    driver does not answer (e.g. `cuda_cores` before driver 520)."""

    name: str
    memory_bytes: int
    compute_capability: str | None = None
    cuda_cores: int | None = None  # nvmlDeviceGetNumGpuCores
    sms: int | None = None  # nvmlDeviceGetAttributes' multiprocessorCount, where the driver gives it
    max_sm_mhz: int | None = None  # nvmlDeviceGetMaxClockInfo(NVML_CLOCK_SM)
    max_memory_mhz: int | None = None  # nvmlDeviceGetMaxClockInfo(NVML_CLOCK_MEM)
    memory_bus_bits: int | None = None  # nvmlDeviceGetMemoryBusWidth


@dataclass(frozen=True)
class Machine:
    """Everything detection read, before it is mapped to catalog ids."""

    cpu: CpuInfo
    memory_bytes: int
    gpus: list[GpuInfo] = field(default_factory=list)
    npu_drivers: list[str] = field(default_factory=list)
    soc_model: str | None = None
    clocks: CpuClocks = field(default_factory=CpuClocks)
    bandwidth: Bandwidth | None = None


@functools.cache
def _names() -> dict[str, Any]:
    text = resources.files("waveidp.fleet").joinpath("data/detect_names.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def parse_cpuinfo(text: str) -> CpuInfo:
    """Model name, physical cores and feature flags from /proc/cpuinfo (x86 and ARM)."""
    blocks = [b for b in re.split(r"\n\s*\n", text.strip()) if "processor" in b]
    if not blocks:
        raise ValueError("no 'processor' entries in cpuinfo")
    entries = [_fields(b) for b in blocks]
    first = entries[0]
    flags = frozenset((first.get("flags") or first.get("Features") or "").split())
    vendor = first.get("vendor_id") or _arm_vendor(first.get("CPU implementer"))
    name = first.get("model name") or _arm_core(first) or "unknown CPU"
    sockets: dict[str, int] = {}
    for e in entries:
        if "cpu cores" in e:
            sockets[e.get("physical id", "0")] = int(e["cpu cores"])
    cores = sum(sockets.values()) if sockets else len(entries)
    return CpuInfo(
        name=" ".join(name.split()),
        vendor=vendor,
        logical=len(entries),
        cores=cores,
        flags=flags,
        family=_int(first.get("cpu family")),
        model=_int(first.get("model")),
        mhz=_float(first.get("cpu MHz")),
    )


def _int(text: str | None) -> int | None:
    try:
        return int(text or "", 0)
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        return float(text or "")
    except ValueError:
        return None


def read_cpu_clocks(sys_root: Path = Path("/sys")) -> CpuClocks:
    """Base and boost clocks (cpufreq) and cache sizes of cpu0 and its siblings, from sysfs."""
    cpu = sys_root / "devices" / "system" / "cpu"
    freq = cpu / "cpu0" / "cpufreq"

    def khz(name: str) -> float | None:
        value = _int(_read(freq / name))
        return round(value / 1e6, 3) if value else None

    l2 = l3 = None
    l3_groups: set[str] = set()
    l3_size = 0
    for index in sorted(cpu.glob("cpu[0-9]*/cache/index[0-9]*")):
        level, kind = _read(index / "level"), _read(index / "type")
        size = _size_kib(_read(index / "size"))
        if size is None or kind not in ("Unified", "Data"):
            continue
        if level == "2" and index.parent.parent.name == "cpu0":
            l2 = size
        elif level == "3":
            group = _read(index / "shared_cpu_list") or index.parent.parent.name
            if group not in l3_groups:
                l3_groups.add(group)
                l3_size += size
    if l3_groups:
        l3 = round(l3_size / 1024, 1)
    return CpuClocks(
        base_ghz=khz("base_frequency"),
        max_ghz=khz("cpuinfo_max_freq"),
        l2_kib=l2,
        l3_mib=l3,
        scaling=freq.is_dir(),
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _size_kib(text: str | None) -> int | None:
    """sysfs cache size (`32K`, `1024K`, `32M`) in KiB."""
    m = re.fullmatch(r"(\d+)\s*([KMG])", text or "")
    if not m:
        return None
    return int(m.group(1)) * {"K": 1, "M": 1024, "G": 1024**2}[m.group(2)]


def _fields(block: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


def _arm_vendor(implementer: str | None) -> str:
    vendors = {"0x41": "ARM", "0x4e": "NVIDIA", "0x61": "Apple", "0x51": "Qualcomm"}
    return vendors.get(implementer or "", "unknown")


def _arm_core(entry: dict[str, str]) -> str | None:
    key = f"{entry.get('CPU implementer', '')}:{entry.get('CPU part', '')}"
    found: str | None = _names()["arm_cores"].get(key)
    return found


def parse_meminfo(text: str) -> int:
    """MemTotal from /proc/meminfo, in bytes."""
    m = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    if not m:
        raise ValueError("no MemTotal line in meminfo")
    return int(m.group(1)) * 1024


def match_hardware(kind: str, name: str) -> dict[str, str] | None:
    """The first `data/detect_names.yaml` entry of `kind` (cpus, gpus, socs) whose pattern matches."""
    for entry in _names()[kind]:
        if re.search(entry["pattern"], name, re.IGNORECASE):
            return dict(entry)
    return None


def relevant_flags(flags: frozenset[str]) -> list[str]:
    """The flags that matter to inference engines, in the data file's order."""
    return [f for f in _names()["flags"] if f in flags]


def build_node(machine: Machine, name: str, address: str) -> Node:
    """Map what was detected to a fleet node with catalog hardware ids (pure)."""
    cpu = machine.cpu
    memory_gib = round(machine.memory_bytes / _GIB, 1)
    devices: list[Device] = []
    soc = match_hardware("socs", machine.soc_model) if machine.soc_model else None
    cpu_entry = match_hardware("cpus", cpu.name)
    cpu_fields: dict[str, Any] = {"name": cpu.name, "cores": cpu.cores, "flags": relevant_flags(cpu.flags)}
    if soc is not None:
        cpu_fields["name"] = machine.soc_model
        devices.append(Device(id="soc", hardware=soc["hardware"], **cpu_fields))
    else:
        hardware = cpu_entry["hardware"] if cpu_entry else GENERIC_CPU
        cpu_fields |= _cpu_description(machine, known=cpu_entry is not None)
        devices.append(Device(id="cpu", hardware=hardware, memory_gib=memory_gib, **cpu_fields))
    devices.extend(_gpu_devices(machine.gpus))
    if any(d in _names()["npu_drivers"] for d in machine.npu_drivers):
        npu = (cpu_entry or {}).get("npu") or "intel-npu"  # intel_vpu is the only NPU driver we know
        devices.append(Device(id="npu", hardware=npu, name=f"NPU of {cpu.name}"))
    return Node(name=node_name(name), address=address, memory_gib=memory_gib, devices=devices)


def _cpu_description(machine: Machine, *, known: bool) -> dict[str, Any]:
    """Threads, clocks, caches and measured bandwidth; for a CPU the catalog does not list, also the
    peak arithmetic per core that its flags and family give (`catalog/data/cpu_cores.yaml`)."""
    cpu, clocks = machine.cpu, machine.clocks
    base = clocks.base_ghz or _name_ghz(cpu.name) or (None if clocks.scaling else _ghz(cpu.mhz))
    out: dict[str, Any] = {
        "threads": cpu.logical if cpu.logical != cpu.cores else None,
        "base_ghz": base,
        "max_ghz": clocks.max_ghz if clocks.max_ghz != base else None,
        "l2_kib": clocks.l2_kib,
        "l3_mib": clocks.l3_mib,
    }
    if machine.bandwidth is not None:
        out["memory_bandwidth_gb_s"] = round(machine.bandwidth.all_cores / 1e9, 1)
        out["core_bandwidth_gb_s"] = round(machine.bandwidth.one_core / 1e9, 1)
    if not known:
        facts = CoreFacts(cpu.vendor, cpu.flags, cpu.name, cpu.family, cpu.model)
        out["flop_per_cycle"] = core_flop_per_cycle(facts)[0]
    return {k: v for k, v in out.items() if v is not None}


def _name_ghz(name: str) -> float | None:
    m = re.search(r"@\s*(\d+(?:\.\d+)?)\s*GHz", name, re.IGNORECASE)
    return float(m.group(1)) if m else None


def _ghz(mhz: float | None) -> float | None:
    return round(mhz / 1000, 2) if mhz else None


def _gpu_devices(gpus: list[GpuInfo], *, match: bool = True) -> list[Device]:
    """One device per kind of board; a board no `gpus` pattern matches (or every board, with
    `match` off) is `gpu-generic` described by what NVML read (`describe_gpu`)."""
    groups: dict[str, list[GpuInfo]] = {}
    for gpu in gpus:
        groups.setdefault(gpu.name, []).append(gpu)
    devices = []
    for i, (gpu_name, same) in enumerate(groups.items()):
        entry = match_hardware("gpus", gpu_name) if match else None
        fields = {"hardware": entry["hardware"]} if entry else describe_gpu(same[0])
        devices.append(Device(id=f"gpu{i}", count=len(same), name=gpu_name, **fields))
    return devices


def describe_gpu(gpu: GpuInfo) -> dict[str, Any]:
    """Device fields for a GPU the catalog does not list: `gpu-generic` with its memory, SMs,
    clocks, memory bus and the dense FLOP per clock per SM of its architecture
    (`catalog/data/gpu_sms.yaml`). What NVML did not answer stays the placeholder's."""
    out: dict[str, Any] = {"hardware": GENERIC_GPU, "memory_gib": round(gpu.memory_bytes / _GIB, 1)}
    cc = gpu.compute_capability
    if cc is None:
        return out
    sms = gpu.sms or (gpu.cuda_cores // fp32_lanes(cc) if gpu.cuda_cores else None)
    share = rated_clock_share(gpu.name)
    out |= {
        "compute_capability": cc,
        "sms": sms,
        "max_ghz": gpu.max_sm_mhz / 1000 if gpu.max_sm_mhz else None,
        "boost_ghz": round(gpu.max_sm_mhz * share / 1000, 3) if gpu.max_sm_mhz and share != 1 else None,
        "memory_bus_bits": gpu.memory_bus_bits,
        "memory_max_mhz": gpu.max_memory_mhz,
        "flop_per_cycle": sm_flop_per_cycle(cc, gpu.name),
    }
    return {k: v for k, v in out.items() if v is not None}


def node_name(text: str) -> str:
    """A valid node name from a host name (`XPS-15.local` -> `xps-15`)."""
    return _slug(text.split(".")[0]) or "localhost"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def read_nvml_gpus() -> list[GpuInfo]:
    """NVIDIA GPUs via nvidia-ml-py; an empty list when the NVML library or a driver is absent."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            raw = pynvml.nvmlDeviceGetName(handle)
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            memory = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total)
            gpus.append(GpuInfo(name=name, memory_bytes=memory, **_nvml_description(pynvml, handle)))
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _nvml_description(pynvml: Any, handle: Any) -> dict[str, Any]:
    """What describes a GPU for sizing: each NVML query on its own, so one the driver does not
    support (NVMLError, or a function an older library lacks) leaves only its field out."""

    def ask(query: str, *args: Any) -> Any:
        try:
            return getattr(pynvml, query)(handle, *args)
        except (pynvml.NVMLError, AttributeError):
            return None

    cc = ask("nvmlDeviceGetCudaComputeCapability")
    attributes = ask("nvmlDeviceGetAttributes")
    return {
        "compute_capability": f"{cc[0]}.{cc[1]}" if cc else None,
        "cuda_cores": ask("nvmlDeviceGetNumGpuCores") or None,
        "sms": getattr(attributes, "multiprocessorCount", None) or None,
        "max_sm_mhz": ask("nvmlDeviceGetMaxClockInfo", pynvml.NVML_CLOCK_SM) or None,
        "max_memory_mhz": ask("nvmlDeviceGetMaxClockInfo", pynvml.NVML_CLOCK_MEM) or None,
        "memory_bus_bits": ask("nvmlDeviceGetMemoryBusWidth") or None,
    }


def read_npu_drivers(sys_root: Path = Path("/sys")) -> list[str]:
    """Kernel driver of each /sys/class/accel/accel* device (e.g. intel_vpu for Intel NPUs)."""
    base = sys_root / "class" / "accel"
    if not base.is_dir():
        return []
    drivers = []
    for dev in sorted(base.glob("accel*")):
        link = dev / "device" / "driver"
        if link.exists():
            drivers.append(link.resolve().name)
    return drivers


def read_machine(
    proc: Path = Path("/proc"), sys_root: Path = Path("/sys"), *, probe: bool | None = None
) -> Machine:
    """Read this machine (the IO edge of detection). `probe` measures the memory bandwidth
    (`waveidp.fleet.probe`, about 2 s); None = only when the CPU is not in the catalog, whose
    bandwidth then cannot be looked up."""
    cpu = parse_cpuinfo((proc / "cpuinfo").read_text(encoding="utf-8", errors="replace"))
    memory = parse_meminfo((proc / "meminfo").read_text(encoding="utf-8"))
    dt_model = proc / "device-tree" / "model"
    soc_model = None
    if dt_model.exists():
        soc_model = dt_model.read_bytes().rstrip(b"\0").decode(errors="replace").strip() or None
    if probe is None:
        probe = soc_model is None and match_hardware("cpus", cpu.name) is None
    bandwidth = None
    if probe:
        from waveidp.fleet.probe import measure_bandwidth

        bandwidth = measure_bandwidth(cpu.cores)
    return Machine(
        cpu=cpu,
        memory_bytes=memory,
        gpus=read_nvml_gpus(),
        npu_drivers=read_npu_drivers(sys_root),
        soc_model=soc_model,
        clocks=read_cpu_clocks(sys_root),
        bandwidth=bandwidth,
    )


def detect_local_node(name: str | None = None, *, probe: bool | None = None) -> Node:
    """This machine as a node: `name` defaults to the host name, which is also its address."""
    host = socket.gethostname()
    return build_node(read_machine(probe=probe), name or host, host)
