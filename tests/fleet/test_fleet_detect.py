"""Detection: recorded /proc samples map to the right catalog ids and flags; this machine is read for real."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from waveidp import catalog, fleet
from waveidp.fleet.detect import (
    CpuInfo,
    GpuInfo,
    Machine,
    build_node,
    detect_local_node,
    parse_cpuinfo,
    parse_meminfo,
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
    assert (a10g.id, a10g.hardware, a10g.memory_gib) == ("gpu1", "nvidia-a10g", 23)


@pytest.mark.parametrize(
    ("name", "hardware"),
    [
        ("NVIDIA GeForce RTX 5070 Ti", "rtx-5070-ti"),
        ("NVIDIA GeForce GTX 1650", "gtx-1650"),
        ("NVIDIA H100 PCIe", "h100-pcie"),
        ("NVIDIA H200", "h200"),
        ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
        ("NVIDIA A100 80GB PCIe", "a100-80gb"),
        ("NVIDIA GeForce RTX 3090 Ti", "nvidia-geforce-rtx-3090-ti"),
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
