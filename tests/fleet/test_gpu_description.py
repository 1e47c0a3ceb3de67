"""A GPU the catalog does not list is described by what NVML reads (SMs, clocks, memory bus, compute
capability) over the `gpu-generic` placeholder, and every consumer sizes it from that description.

The H100's NVML figures (tests/fleet/data/nvml-h100-sxm.json; its README says which were read on the
device machine): described with the catalog match off, it must land on the catalog's datasheet
figures for that board.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import yaml

from support import run_cli
from waveidp import catalog, fleet
from waveidp.catalog._gpu_sm import sm_flop_per_cycle
from waveidp.cli._calibrate import devices_to_calibrate
from waveidp.fleet.detect import GpuInfo, Machine, _gpu_devices, build_node, parse_cpuinfo, read_nvml_gpus
from waveidp.fleet.hardware import GPU_TRANSFERS_PER_CLOCK, device_hardware
from waveidp.plan._facts import node_facts
from waveidp.plan._rules import rules
from waveidp.sizing import Deployment, SizingRequest, estimate

DATA = Path(__file__).parent / "data"
GIB = 1024**3
# An RTX A4000 (GA104, not in the catalog) as NVML describes it: 48 SMs x 128 FP32 lanes, 1.56 GHz
# boost, 16 GB GDDR6 on 256 bits at 14 Gbps (NVIDIA RTX A4000 datasheet, 2021: 19.2 TFLOPS fp32,
# 448 GB/s).
A4000 = GpuInfo(
    "NVIDIA RTX A4000",
    17171480576,
    "8.6",
    cuda_cores=6144,
    max_sm_mhz=1560,
    max_memory_mhz=7001,
    memory_bus_bits=256,
)


def _recorded_h100() -> GpuInfo:
    (raw,) = json.loads((DATA / "nvml-h100-sxm.json").read_text())
    return GpuInfo(**raw)


def _size(hw: catalog.Hardware, c: int) -> tuple[float, float]:
    d = Deployment.build("llama-3.1-8b", "q4_k_m", [hw], "llamacpp")
    p = estimate(SizingRequest(deployment=d, prompt_tokens=512, output_tokens=128, concurrency=c)).performance
    return p.ttft_ms, p.itl_ms


def test_the_h100_described_from_its_nvml_figures_matches_its_catalog_entry() -> None:
    (device,) = _gpu_devices([_recorded_h100()], match=False)
    assert (device.hardware, device.sms, device.compute_capability) == ("gpu-generic", 132, "9.0")
    described, listed = device_hardware(device), catalog.hardware("h100-sxm")
    assert described.label == "NVIDIA H100 80GB HBM3" and described.fp8 and not described.fp4
    assert described.memory_bytes == pytest.approx(listed.memory_bytes, rel=0.002)
    assert described.memory_bandwidth_bytes_per_s == pytest.approx(
        listed.memory_bandwidth_bytes_per_s, rel=0.002
    )
    assert described.dense_flops["fp32"] == pytest.approx(listed.dense_flops["fp32"], rel=0.002)
    assert described.clock_ghz == pytest.approx(1.98)  # what per-step GPU cycles take
    # the datasheet's tensor figures are at 1.83 GHz, NVML's SM maximum is 1.98 GHz
    for dtype in ("fp16", "bf16", "fp8", "int8", "tf32"):
        assert described.dense_flops[dtype] / listed.dense_flops[dtype] == pytest.approx(
            1.98 / 1.83, rel=0.002
        )
    # sized like the catalog board: the measured Hopper factors, its own peaks
    for c in (1, 8):
        (ttft_a, itl_a), (ttft_b, itl_b) = _size(listed, c), _size(described, c)
        assert ttft_b == pytest.approx(ttft_a, rel=0.05) and itl_b == pytest.approx(itl_a, rel=0.02)


# catalog board -> (SMs, the boost clock its datasheet peaks are given at, NVML's max memory clock or
# None, bus bits); the per-SM table must give the catalog's figures back
BOARDS = {
    "h100-sxm": (132, 1.83, 2619, 5120),
    "a100-80gb": (108, 1.41, None, 5120),
    "l40s": (142, 2.52, 9001, 384),
    "rtx-6000-ada": (142, 2.505, None, 384),
    "l4": (58, 2.04, None, 192),
    "t4": (40, 1.59, None, 256),
    "rtx-3080": (68, 1.71, None, 320),
    "rtx-3090": (82, 1.695, None, 384),
    "rtx-4090": (128, 2.52, 10501, 384),
    "rtx-5090": (170, 2.407, 14001, 512),
    "rtx-5070-ti": (70, 2.452, None, 256),
    "gtx-1650": (14, 1.665, None, 128),
    "jetson-orin-nano-super": (8, 1.02, None, 128),
}


@pytest.mark.parametrize("hardware_id", sorted(BOARDS))
def test_the_per_sm_table_gives_back_the_catalogs_datasheet_peaks(hardware_id: str) -> None:
    hw = catalog.hardware(hardware_id)
    sms, ghz, memory_mhz, bus_bits = BOARDS[hardware_id]
    assert hw.compute_capability
    name = (
        "NVIDIA GeForce " if hardware_id.startswith(("rtx-3", "rtx-4", "rtx-5", "gtx")) else "NVIDIA "
    ) + hw.name
    rates = sm_flop_per_cycle(hw.compute_capability, name)
    for dtype, peak in hw.dense_flops.items():
        if dtype == "int4":  # no format Wave sizes computes in int4; the L40S datasheet gives int8's rate
            continue
        ghz_here = 1.98 if (hardware_id, dtype) == ("h100-sxm", "fp32") else ghz  # FP32: the full boost
        assert sms * ghz_here * 1e9 * rates.get(dtype, 0) == pytest.approx(peak, rel=0.015), dtype
    assert not {"fp8", "fp4"} & (rates.keys() - hw.dense_flops.keys())  # no FP8/FP4 a board lacks
    if memory_mhz:
        bandwidth = memory_mhz * 1e6 * GPU_TRANSFERS_PER_CLOCK * bus_bits / 8
        assert bandwidth == pytest.approx(hw.memory_bandwidth_bytes_per_s, rel=0.002)


@pytest.mark.parametrize(
    ("name", "cc", "fp16", "fp8", "int8"),
    [
        ("NVIDIA GeForce RTX 4060", "8.9", 512, 1024, 2048),  # GeForce: half-rate FP32-accumulate
        ("NVIDIA RTX 4000 Ada Generation", "8.9", 1024, 2048, 2048),
        ("NVIDIA GeForce GTX 1660 SUPER", "7.5", 256, None, 512),  # TU116: no tensor cores
        ("Tesla P40", "6.1", 4, None, 1024),  # fp16 at 1/64, DP4A int8
        ("NVIDIA GeForce RTX 5060 Ti", "12.0", 512, 2048, 2048),
        ("NVIDIA GB10", "12.1", 1024, 2048, 2048),  # an unlisted minor takes its major's newest
        ("NVIDIA Future", "13.0", 1024, 2048, 2048),  # an unlisted major, the newest known
    ],
)
def test_architecture_rates_per_board(
    name: str, cc: str, fp16: float, fp8: float | None, int8: float
) -> None:
    rates = sm_flop_per_cycle(cc, name)
    assert (rates["fp16"], rates.get("fp8"), rates["int8"]) == (fp16, fp8, int8)


def test_an_unlisted_gpu_is_described_stored_validated_sized_and_calibratable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cpu = parse_cpuinfo((DATA / "cpuinfo-ryzen-9-9900x.txt").read_text())
    node = build_node(Machine(cpu=cpu, memory_bytes=64 * GIB, gpus=[A4000, A4000]), "ws", "ws")
    gpu = node.devices[1]
    assert (gpu.hardware, gpu.count, gpu.sms, gpu.max_ghz, gpu.boost_ghz) == (
        "gpu-generic",
        2,
        48,
        1.56,
        None,
    )
    path = tmp_path / "wave.yaml"
    path.write_text(fleet.dump(fleet.Fleet(nodes=[node])))
    stored = yaml.safe_load(path.read_text())["nodes"][0]["devices"][1]
    assert stored["flop_per_cycle"]["fp16"] == 1024 and stored["memory_bus_bits"] == 256

    resolved = fleet.resolve(fleet.load(path))  # no unknown-id error
    hw = resolved.device_hardware(resolved.fleet.nodes[0].devices[1])
    assert hw.name == "NVIDIA RTX A4000" and hw.memory_bytes == pytest.approx(16 * GIB, rel=0.001)
    assert hw.memory_bandwidth_bytes_per_s == pytest.approx(448e9, rel=0.001)
    assert hw.dense_flops["fp32"] == pytest.approx(19.2e12, rel=0.01) and not hw.fp8
    assert "generic" not in hw.label

    ran = run_cli(capsys, "fleet", "validate", path)
    assert ran.code == 0 and "ok" in ran.out
    assert "ws/gpu0 (NVIDIA RTX A4000) is not in the hardware catalog" in " ".join(ran.err.split())
    ran = run_cli(
        capsys, "size", "-m", "llama-3.1-8b", "-q", "q4_k_m", "--engine", "llamacpp",
        "--prompt-tokens", "512", "--output-tokens", "128", "--fleet", path, "--device", "ws/gpu0", "--json",
    )  # fmt: skip
    assert ran.code == 0, ran.err
    sized = json.loads(ran.out)
    _, itl = _size(hw, 1)
    assert sized["performance"]["itl_ms"] == pytest.approx(itl, rel=1e-6)
    assert [d.id for d in devices_to_calibrate(node, None)] == ["gpu0", "cpu"]
    (facts,) = node_facts(resolved.fleet, catalog.hardware, rules())  # what `wave plan` decides on
    assert [(g.hardware.name, g.hardware.compute_capability) for g in facts.nvidia] == [
        ("NVIDIA RTX A4000", "8.6")
    ] * 2


def test_what_nvml_does_not_answer_stays_the_placeholders() -> None:
    (device,) = _gpu_devices([GpuInfo("NVIDIA Mystery", 12 * GIB)])
    assert device.hardware == "gpu-generic" and device.sms is None
    hw, base = device_hardware(device), catalog.hardware("gpu-generic")
    assert hw.memory_bytes == pytest.approx(12 * GIB, rel=0.01)
    assert (hw.dense_flops, hw.memory_bandwidth_bytes_per_s) == (
        base.dense_flops,
        base.memory_bandwidth_bytes_per_s,
    )


def test_the_nvml_reader_leaves_out_only_what_the_driver_does_not_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NVML itself cannot run here; a stand-in module answers as an old driver and library would
    (no CUDA core count, no attributes outside MIG, no bus-width function)."""

    class NVMLError(Exception):
        pass

    def refuse(handle: object) -> None:
        raise NVMLError("Not Supported")

    nvml = types.SimpleNamespace(
        NVMLError=NVMLError,
        NVML_CLOCK_SM=1,
        NVML_CLOCK_MEM=2,
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: f"handle{i}",
        nvmlDeviceGetName=lambda h: b"NVIDIA RTX A4000",
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=A4000.memory_bytes),
        nvmlDeviceGetCudaComputeCapability=lambda h: (8, 6),
        nvmlDeviceGetNumGpuCores=refuse,
        nvmlDeviceGetAttributes=refuse,
        nvmlDeviceGetMaxClockInfo=lambda h, clock: {1: 1560, 2: 7001}[clock],
    )
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    (gpu,) = read_nvml_gpus()
    assert gpu == GpuInfo("NVIDIA RTX A4000", A4000.memory_bytes, "8.6", max_sm_mhz=1560, max_memory_mhz=7001)
    (device,) = _gpu_devices([gpu])
    assert (device.compute_capability, device.sms, device.memory_bus_bits) == ("8.6", None, None)
    hw = device_hardware(device)  # no SMs, no bus: the placeholder's peaks and bandwidth
    assert hw.dense_flops == catalog.hardware("gpu-generic").dense_flops and hw.compute_capability == "8.6"
