"""A fleet device as sizing sees it: its catalog entry, with what was detected and measured on it.

Every consumer of a fleet (`wave size`/`fit`/`plan`, the router's prior, `wave render`) turns a
device into `Hardware` here, so a node's installed memory, its detected CPU description and its
calibration reach all of them the same way.

- memory: the device's `memory_gib`, else the node's for a CPU or NPU (they use system RAM);
- a CPU the catalog does not list (`cpu-generic`) is described by its detection: cores x clock x
  `flop_per_cycle` for its peaks, the probe's bandwidth over `PROBE_SHARE_OF_PEAK` for its memory;
- a listed CPU keeps the catalog's peaks and datasheet bandwidth (a calibration fits what llama.cpp
  reaches of it); a probe's one-core figure bounds each thread either way;
- a GPU the catalog does not list (`gpu-generic`) likewise: SMs x boost clock x `flop_per_cycle`
  (per SM) for its peaks, memory bus width x NVML's maximum memory clock x `GPU_TRANSFERS_PER_CLOCK`
  for its bandwidth, its compute capability for what it runs (FP8 from 8.9, FP4 from 10.0);
- `calibration` (engine -> factors) travels with the hardware to `waveidp.sizing.efficiency_for`.
"""

from __future__ import annotations

from waveidp import catalog
from waveidp.catalog import GENERIC_CPU, GENERIC_GPU, Hardware
from waveidp.fleet.models import Device, Node

_GIB = 1024**3
# A streaming-read probe reaches about this share of the memory's datasheet peak (STREAM-class
# kernels: 70-85% on DDR4/DDR5 desktops and servers, e.g. the STREAM results at
# cs.virginia.edu/stream and AMD's EPYC 9004 tuning guide, 58015); so the probe over it estimates
# the peak that the efficiency factors (decode_bandwidth) are shares of.
PROBE_SHARE_OF_PEAK = 0.8
# NVML (like CUDA's cudaDevAttrMemoryClockRate) reports a GPU memory clock at which two transfers
# per pin give the rated data rate, for GDDR5/6, GDDR6X (PAM4), GDDR7 (PAM3) and HBM alike: RTX 4090
# 10501 MHz x 2 x 384 bit = 1008 GB/s (GDDR6X, 21 Gbps), RTX 5090 14001 MHz x 2 x 512 bit = 1792
# GB/s (GDDR7, 28 Gbps), L40S 9001 MHz x 2 x 384 bit = 864 GB/s (GDDR6), H100 SXM 2619 MHz x 2 x
# 5120 bit = 3352 GB/s (HBM3; read on the device, tests/fleet/data/nvml-h100-sxm.json), each the
# datasheet figure (nvidia-smi clocks.max.memory in published dumps; NVIDIA's "How to Implement
# Performance Metrics in CUDA C/C++": theoretical bandwidth = memory clock x bus bytes x 2, DDR).
GPU_TRANSFERS_PER_CLOCK = 2


def device_hardware(device: Device, node: Node | None = None, *, base: Hardware | None = None) -> Hardware:
    """`device`'s hardware (one unit of it); `base` skips the catalog lookup of `device.hardware`."""
    hw = base or catalog.hardware(device.hardware)
    update: dict[str, object] = {}
    if device.memory_gib is not None:
        update["memory_bytes"] = int(device.memory_gib * _GIB)
    elif node is not None and node.memory_gib is not None and hw.kind in ("cpu", "npu"):
        update["memory_bytes"] = int(node.memory_gib * _GIB)
    if hw.kind == "cpu":
        update |= _cpu_fields(device, hw)
    elif hw.id == GENERIC_GPU:
        update |= _gpu_fields(device, hw)
    if device.calibration:
        update["calibration"] = {engine: dict(c.factors) for engine, c in device.calibration.items()}
    return hw.model_copy(update=update) if update else hw


def _cpu_fields(device: Device, hw: Hardware) -> dict[str, object]:
    out: dict[str, object] = {}
    if device.threads:
        out["threads"] = device.threads
    if device.core_bandwidth_gb_s:
        out["core_bandwidth_bytes_per_s"] = device.core_bandwidth_gb_s * 1e9
    if hw.id != GENERIC_CPU:
        if device.cores and hw.cores and device.cores != hw.cores:  # e.g. a VM given part of the CPU
            out["dense_flops"] = {k: v * device.cores / hw.cores for k, v in hw.dense_flops.items()}
            out["cores"] = device.cores
        if device.flags:
            out["cpu_flags"] = tuple(device.flags)
        return out
    # an unlisted CPU: what detection read replaces the nominal placeholder's figures
    cores = device.cores or hw.cores or 1
    ghz = device.base_ghz or device.max_ghz
    out |= {
        "name": device.name or hw.name,
        "cores": cores,
        "cpu_flags": tuple(device.flags) or hw.cpu_flags,
        "source": f"detected on its node ({device.name or 'unnamed CPU'}); catalog placeholder: {hw.source}",
    }
    if device.flop_per_cycle and ghz:
        out["dense_flops"] = {k: cores * ghz * 1e9 * v for k, v in device.flop_per_cycle.items()}
    if device.memory_bandwidth_gb_s:
        out["memory_bandwidth_bytes_per_s"] = device.memory_bandwidth_gb_s * 1e9 / PROBE_SHARE_OF_PEAK
    return out


def _gpu_fields(device: Device, hw: Hardware) -> dict[str, object]:
    """An unlisted GPU: what NVML read replaces the nominal placeholder's figures (each where read)."""
    out: dict[str, object] = {
        "name": device.name or hw.name,
        "source": f"detected on its node ({device.name or 'unnamed GPU'}); catalog placeholder: {hw.source}",
    }
    ghz = device.boost_ghz or device.max_ghz
    if device.sms and ghz and device.flop_per_cycle:
        flops = {k: device.sms * ghz * 1e9 * v for k, v in device.flop_per_cycle.items() if v > 0}
        out |= {"dense_flops": flops, "fp8": "fp8" in flops, "fp4": "fp4" in flops, "clock_ghz": ghz}
    if device.compute_capability:
        out["compute_capability"] = device.compute_capability
    if device.memory_bus_bits and device.memory_max_mhz:
        bytes_per_transfer = device.memory_bus_bits / 8
        out["memory_bandwidth_bytes_per_s"] = (
            device.memory_max_mhz * 1e6 * GPU_TRANSFERS_PER_CLOCK * bytes_per_transfer
        )
    return out
