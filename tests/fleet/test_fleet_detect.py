"""Detection: recorded /proc samples map to the right catalog ids and flags; this machine is read for real."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from waveidp import catalog, fleet
from waveidp.fleet.detect import (
    Bandwidth,
    CpuClocks,
    CpuInfo,
    GpuInfo,
    Machine,
    build_node,
    detect_local_node,
    parse_cpuinfo,
    parse_meminfo,
    read_cpu_clocks,
    read_npu_drivers,
)

DATA = Path(__file__).parent / "data"
GIB = 1024**3


def _cpu(name: str) -> CpuInfo:
    return parse_cpuinfo((DATA / f"cpuinfo-{name}.txt").read_text())


@pytest.mark.parametrize(
    ("sample", "model", "cores", "logical", "hardware", "has", "lacks"),
    [
        (
            "ryzen-9-9900x",
            "AMD Ryzen 9 9900X 12-Core Processor",
            12,
            24,
            "ryzen-9-9900x",
            ["avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni"],
            ["amx_tile", "avx512_fp16"],
        ),
        (
            "i9-9980hk",
            "Intel(R) Core(TM) i9-9980HK CPU @ 2.40GHz",
            8,
            16,
            "i9-9980hk",
            ["avx2", "fma", "f16c"],
            ["avx512f", "avx_vnni", "avx512_bf16"],
        ),
        (
            "core-ultra-7-258v",
            "Intel(R) Core(TM) Ultra 7 258V",
            8,
            8,
            "core-ultra-7-258v",
            ["avx2", "avx_vnni"],
            ["avx512f", "amx_tile"],
        ),
    ],
)
def test_cpuinfo_samples_map_to_catalog_ids_and_flags(
    sample: str, model: str, cores: int, logical: int, hardware: str, has: list[str], lacks: list[str]
) -> None:
    cpu = _cpu(sample)
    assert (cpu.name, cpu.cores, cpu.logical) == (model, cores, logical)
    node = build_node(Machine(cpu=cpu, memory_bytes=64 * GIB), "Box.local", "box.local")
    (device,) = node.devices
    assert (device.id, device.hardware, device.cores) == ("cpu", hardware, cores)
    assert set(has) <= set(device.flags) and not set(lacks) & set(device.flags)
    assert device.hardware in catalog.all_hardware()
    assert node.name == "box" and node.memory_gib == 64


def test_meminfo_total() -> None:
    assert parse_meminfo((DATA / "meminfo-ryzen-9-9900x.txt").read_text()) == 131071456 * 1024


def test_unknown_cpu_falls_back_to_cpu_generic_with_its_memory() -> None:
    text = (DATA / "cpuinfo-i9-9980hk.txt").read_text()
    text = text.replace("i9-9980HK CPU @ 2.40GHz", "i7-9750H CPU @ 2.60GHz")
    node = build_node(Machine(cpu=parse_cpuinfo(text), memory_bytes=int(15.5 * GIB)), "laptop", "laptop")
    (device,) = node.devices
    assert device.hardware == "cpu-generic"
    assert device.memory_gib == 15.5 and device.name == "Intel(R) Core(TM) i7-9750H CPU @ 2.60GHz"


def test_jetson_is_one_soc_device() -> None:
    cpu = _cpu("jetson-orin-nano")
    assert (cpu.name, cpu.cores, cpu.vendor) == ("ARM Cortex-A78AE", 6, "ARM")
    soc = (DATA / "device-tree-model-jetson-orin-nano-super.txt").read_bytes().rstrip(b"\0").decode()
    node = build_node(Machine(cpu=cpu, memory_bytes=int(7.4 * GIB), soc_model=soc), "jetson", "jetson")
    (device,) = node.devices
    assert (device.id, device.hardware, device.cores) == ("soc", "jetson-orin-nano-super", 6)
    assert {"asimd", "asimddp"} <= set(device.flags)


def test_gpus_from_nvml_group_identical_boards_and_keep_unknown_ones_visible() -> None:
    gpus = [GpuInfo("NVIDIA H100 80GB HBM3", 80 * GIB, "9.0")] * 8 + [GpuInfo("NVIDIA A10G", 23 * GIB, "8.6")]
    node = build_node(Machine(cpu=_cpu("ryzen-9-9900x"), memory_bytes=2048 * GIB, gpus=gpus), "hgx", "hgx")
    _cpu_device, h100, a10g = node.devices
    assert (h100.id, h100.hardware, h100.count, h100.memory_gib) == ("gpu0", "h100-sxm", 8, None)
    # not in the catalog: the placeholder, described by what NVML read (tests/fleet/test_gpu_description.py)
    assert (a10g.id, a10g.hardware, a10g.memory_gib, a10g.compute_capability) == (
        "gpu1",
        "gpu-generic",
        23,
        "8.6",
    )


@pytest.mark.parametrize(
    ("name", "hardware"),
    [
        ("NVIDIA GeForce RTX 5070 Ti", "rtx-5070-ti"),
        ("NVIDIA GeForce GTX 1650", "gtx-1650"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
        ("NVIDIA A100 80GB PCIe", "a100-80gb"),
        ("NVIDIA L4", "l4"),
        ("Tesla T4", "t4"),
        ("NVIDIA RTX 6000 Ada Generation", "rtx-6000-ada"),
        ("NVIDIA RTX A6000", "gpu-generic"),
        ("NVIDIA GeForce RTX 3090 Ti", "gpu-generic"),
    ],
)
def test_gpu_names(name: str, hardware: str) -> None:
    machine = Machine(cpu=_cpu("i9-9980hk"), memory_bytes=GIB, gpus=[GpuInfo(name, 8 * GIB)])
    node = build_node(machine, "a", "a")
    assert node.devices[1].hardware == hardware


def test_intel_npu_found_through_sysfs_driver_links(tmp_path: Path) -> None:
    driver = tmp_path / "bus" / "pci" / "drivers" / "intel_vpu"
    driver.mkdir(parents=True)
    device = tmp_path / "devices" / "pci0000:00" / "0000:00:0b.0"
    device.mkdir(parents=True)
    (device / "driver").symlink_to(driver)
    accel = tmp_path / "class" / "accel" / "accel0"
    accel.mkdir(parents=True)
    (accel / "device").symlink_to(device)
    drivers = read_npu_drivers(tmp_path)
    assert drivers == ["intel_vpu"]
    machine = Machine(cpu=_cpu("core-ultra-7-258v"), memory_bytes=32 * GIB, npu_drivers=drivers)
    node = build_node(machine, "x", "x")
    assert [(d.id, d.hardware) for d in node.devices] == [
        ("cpu", "core-ultra-7-258v"),
        ("npu", "core-ultra-7-258v-npu"),
    ]
    assert read_npu_drivers(tmp_path / "absent") == []


def test_this_machine() -> None:
    node = detect_local_node("here")
    assert node.name == "here"
    cpu = node.devices[0]
    assert cpu.id in ("cpu", "soc") and cpu.cores and cpu.cores <= (os.cpu_count() or 1)
    meminfo = parse_meminfo(Path("/proc/meminfo").read_text())
    assert node.memory_gib == round(meminfo / GIB, 1)
    fleet.loads(fleet.dump(fleet.Fleet(nodes=[node])))  # what detect prints is a valid fleet file


# ---- an unknown CPU is described by what detection reads, not mapped to a placeholder ---------------


def test_epyc_vm_is_described_by_its_flags_family_clock_and_caches() -> None:
    """This repository's CI machine as recorded: an AVX-512 VNNI/BF16 EPYC (Zen 4, family 25) in a
    VM without cpufreq, so `cpu MHz` is its nominal clock; sysfs gives its caches."""
    cpu = _cpu("epyc-zen4-vm")
    assert (cpu.name, cpu.vendor, cpu.family, cpu.model, cpu.cores) == ("AMD EPYC", "AuthenticAMD", 25, 17, 2)
    clocks = read_cpu_clocks(DATA / "sysfs-epyc-zen4-vm")
    assert (clocks.l2_kib, clocks.l3_mib, clocks.scaling, clocks.max_ghz) == (1024, 32.0, False, None)
    node = build_node(Machine(cpu=cpu, memory_bytes=24 * GIB, clocks=clocks), "vm", "vm")
    (device,) = node.devices
    assert device.hardware == "cpu-generic" and device.base_ghz == 2.6 and device.max_ghz is None
    # Zen 4 runs AVX-512 on two 256-bit FMA pipes: 32 fp32 FLOP/cycle; VDPBF16PS 2x, VPDPBUSD 4x
    assert device.flop_per_cycle == {"fp32": 32, "bf16": 64, "int8": 128}
    assert {"avx512f", "avx512_vnni", "avx512_bf16"} <= set(device.flags)
    hw = fleet.device_hardware(device, node)
    assert hw.name == "AMD EPYC" and hw.cores == 2
    assert hw.dense_flops["int8"] == pytest.approx(2 * 2.6e9 * 128)
    assert hw.memory_bytes == 24 * GIB


@pytest.mark.parametrize(
    ("sample", "rename", "fp32", "bf16", "int8", "ghz"),
    [
        # an AVX2 laptop chip the catalog lacks: the clock from its name, 2 x 256-bit FMA
        ("i9-9980hk", ("i9-9980HK CPU @ 2.40GHz", "i7-9750H CPU @ 2.60GHz"), 32, 32, 128, 2.6),
        # a Zen 5 desktop the catalog lacks: full 512-bit datapath, BF16 and VNNI dots
        ("ryzen-9-9900x", ("Ryzen 9 9900X 12-Core", "Ryzen 9 9950X 16-Core"), 64, 128, 256, None),
    ],
)
def test_unlisted_cpus_get_peaks_from_their_family_and_flags(
    sample: str, rename: tuple[str, str], fp32: int, bf16: int, int8: int, ghz: float | None
) -> None:
    text = (DATA / f"cpuinfo-{sample}.txt").read_text().replace(*rename)
    clocks = CpuClocks(max_ghz=5.7, scaling=True)  # cpufreq: `cpu MHz` is momentary, not used
    node = build_node(Machine(cpu=parse_cpuinfo(text), memory_bytes=32 * GIB, clocks=clocks), "x", "x")
    (device,) = node.devices
    assert device.hardware == "cpu-generic"
    assert device.flop_per_cycle == {"fp32": fp32, "bf16": bf16, "int8": int8}
    assert (device.base_ghz, device.max_ghz) == (ghz, 5.7)
    hw = fleet.device_hardware(device, node)
    assert hw.dense_flops["fp32"] == pytest.approx(device.cores * (ghz or 5.7) * 1e9 * fp32)


def test_cpufreq_clocks_and_caches_from_sysfs(tmp_path: Path) -> None:
    cpu = tmp_path / "devices" / "system" / "cpu"
    freq = cpu / "cpu0" / "cpufreq"
    freq.mkdir(parents=True)
    (freq / "cpuinfo_max_freq").write_text("5100000\n")  # kHz
    (freq / "base_frequency").write_text("2400000\n")
    for n in range(4):  # two L3 slices of 16 MiB, each shared by two cores
        index = cpu / f"cpu{n}" / "cache" / "index3"
        index.mkdir(parents=True)
        (index / "level").write_text("3\n")
        (index / "type").write_text("Unified\n")
        (index / "size").write_text("16384K\n")
        (index / "shared_cpu_list").write_text(f"{n // 2 * 2}-{n // 2 * 2 + 1}\n")
    clocks = read_cpu_clocks(tmp_path)
    assert (clocks.base_ghz, clocks.max_ghz, clocks.l3_mib, clocks.scaling) == (2.4, 5.1, 32.0, True)
    assert read_cpu_clocks(tmp_path / "absent") == CpuClocks()


def test_a_listed_cpu_keeps_its_catalog_peaks_and_a_probe_bounds_each_thread() -> None:
    machine = Machine(cpu=_cpu("ryzen-9-9900x"), memory_bytes=64 * GIB, bandwidth=Bandwidth(70e9, 30e9))
    node = build_node(machine, "desk", "desk")
    (device,) = node.devices
    assert device.hardware == "ryzen-9-9900x" and not device.flop_per_cycle and device.threads == 24
    assert (device.memory_bandwidth_gb_s, device.core_bandwidth_gb_s) == (70.0, 30.0)
    hw = fleet.device_hardware(device, node)
    listed = catalog.hardware("ryzen-9-9900x")
    assert hw.dense_flops == listed.dense_flops
    assert hw.memory_bandwidth_bytes_per_s == listed.memory_bandwidth_bytes_per_s  # the datasheet's
    assert hw.core_bandwidth_bytes_per_s == 30e9 and hw.memory_bytes == 64 * GIB


def test_bandwidth_probe_measures_this_machine() -> None:
    from waveidp.fleet.probe import measure_bandwidth

    bw = measure_bandwidth(min(2, os.cpu_count() or 1), seconds=0.2)
    assert 1e9 < bw.one_core <= bw.all_cores < 2e12


def test_the_gpu_machines_host_cpu_as_recorded_there() -> None:
    """/proc/cpuinfo and sysfs of the H100 machine's host (investigations/cpu/device_cpu.sh): an Emerald
    Rapids Xeon (family 6 model 207) that a VM names only "Intel(R) Xeon(R) Processor", 16 cores,
    2 MiB L2 each, 300 MiB L3, AMX in its flags; no cpufreq, so `cpu MHz` is its base clock."""
    cpu = _cpu("xeon-emr-h100-host")
    assert (cpu.vendor, cpu.family, cpu.model, cpu.cores, cpu.mhz) == ("GenuineIntel", 6, 207, 16, 2100.0)
    clocks = read_cpu_clocks(DATA / "sysfs-xeon-emr-h100-host")
    assert (clocks.l2_kib, clocks.l3_mib, clocks.scaling) == (2048, 300.0, False)
    (device,) = build_node(Machine(cpu=cpu, memory_bytes=126 * GIB, clocks=clocks), "h", "h").devices
    assert device.hardware == "cpu-generic" and device.base_ghz == 2.1
    # Xeon Scalable: 2 x 512-bit FMA; AMX tiles for bf16 and int8
    assert device.flop_per_cycle == {"fp32": 64, "bf16": 1024, "int8": 2048}
