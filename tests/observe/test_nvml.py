"""NVML readings mapped to DCGM exporter's names, units and labels (pynvml stood in at its boundary),
and the real pynvml on this machine, which has no NVIDIA driver: a clean absence."""

from __future__ import annotations

import time

import pytest
from fake_pynvml import FakeNvml, geforce, h100
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from waveidp.observe import NodeCollector, NvmlReader, TegrastatsReader
from waveidp.observe.exposition import DCGM_LABELS, NodeMetrics


def _collector(fake: FakeNvml) -> NodeCollector:
    c = NodeCollector(60, nvml=NvmlReader(nvml=fake), tegrastats=TegrastatsReader("/nonexistent"))
    c.hostname = "gpu-box"
    return c


def _scrape(c: NodeCollector) -> dict[str, list]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeMetrics(c, stale_after_s=60))
    text = generate_latest(registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def _by_gpu(samples: list) -> dict[str, float]:
    return {s.labels["gpu"]: s.value for s in samples}


def test_nvml_fields_carry_dcgm_names_units_and_labels() -> None:
    fake = FakeNvml([h100(), geforce()])
    c = _collector(fake)
    try:
        s = c.open()
        fams = _scrape(c)
    finally:
        c.close()
    assert fake.shutdown_calls == 1
    big, small = s.gpus
    assert big.memory_used_bytes == 80_000 * 2**20 and big.power_w == pytest.approx(612.345)
    assert small.memory_reserved_bytes is None  # no _v2 memory call on that driver: v1 figures
    labels = fams["DCGM_FI_DEV_FB_USED"][0].labels
    assert set(labels) == set(DCGM_LABELS)
    assert labels == {
        "gpu": "0",
        "UUID": "GPU-4f3a2b1c-0000-1111-2222-333344445555",
        "pci_bus_id": "00000000:19:00.0",
        "device": "nvidia0",
        "modelName": "NVIDIA H100 80GB HBM3",
        "Hostname": "gpu-box",
        "DCGM_FI_DRIVER_VERSION": "550.127.05",
    }
    assert _by_gpu(fams["DCGM_FI_DEV_FB_USED"]) == {"0": 80_000, "1": 1024}  # MiB, as DCGM
    h = h100()
    free_mib = (h.total - h.used - (h.reserved or 0)) / 2**20
    assert _by_gpu(fams["DCGM_FI_DEV_FB_FREE"])["0"] == pytest.approx(free_mib)
    assert _by_gpu(fams["DCGM_FI_DEV_FB_FREE"])["1"] == 3072
    assert _by_gpu(fams["DCGM_FI_DEV_FB_RESERVED"]) == {"0": pytest.approx(541.0)}
    assert _by_gpu(fams["DCGM_FI_DEV_GPU_UTIL"]) == {"0": 97, "1": 12}  # percent, not a ratio
    assert _by_gpu(fams["DCGM_FI_DEV_MEM_COPY_UTIL"]) == {"0": 61, "1": 3}
    assert _by_gpu(fams["DCGM_FI_DEV_POWER_USAGE"])["0"] == pytest.approx(612.345)  # watts
    assert _by_gpu(fams["DCGM_FI_DEV_POWER_MGMT_LIMIT"])["0"] == 700
    assert _by_gpu(fams["DCGM_FI_DEV_GPU_TEMP"]) == {"0": 67, "1": 40}
    assert (
        _by_gpu(fams["DCGM_FI_DEV_SM_CLOCK"])["0"] == 1980
        and _by_gpu(fams["DCGM_FI_DEV_MEM_CLOCK"])["0"] == 2619
    )
    # what a GPU does not report is absent for that GPU, never a zero
    assert _by_gpu(fams["DCGM_FI_DEV_MEMORY_TEMP"]) == {"0": 74}
    assert _by_gpu(fams["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]) == {"0": 9_876_543_210}  # mJ
    assert _by_gpu(fams["DCGM_FI_DEV_ENC_UTIL"]) == {"1": 0}
    assert _by_gpu(fams["DCGM_FI_DEV_CLOCKS_EVENT_REASONS"]) == {"0": 0x44, "1": 0x1}
    active = {
        (x.labels["gpu"], x.labels["reason"]) for x in fams["wave_gpu_clocks_event_active"] if x.value == 1
    }
    assert active == {("0", "sw_power_cap"), ("0", "hw_thermal_slowdown"), ("1", "gpu_idle")}


def test_energy_counter_keeps_dcgm_exact_name() -> None:
    c = _collector(FakeNvml([h100()]))
    try:
        c.open()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(NodeMetrics(c, stale_after_s=60))
        text = generate_latest(registry).decode()
    finally:
        c.close()
    assert "\nDCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{" in text
    assert "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total" not in text


def test_xid_events_are_counted_per_gpu_and_last_value_kept() -> None:
    fake = FakeNvml([h100(), h100()])
    fake.gpus[1].uuid = "GPU-second"
    c = _collector(fake)
    try:
        c.open()
        assert c.nvml.xid_watch == "2 GPU(s)"
        fake.events.put((1, 79))
        fake.events.put((1, 79))
        fake.events.put((1, 48))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(c.sample().gpus[1].xid_counts.values()) < 3:
            time.sleep(0.02)
        fams = _scrape(c)
    finally:
        c.close()
    assert _by_gpu(fams["DCGM_FI_DEV_XID_ERRORS"]) == {"0": 0, "1": 48}
    counts = {(x.labels["gpu"], x.labels["xid"]): x.value for x in fams["wave_gpu_xid_errors"]}
    assert counts == {("1", "48"): 1, ("1", "79"): 2}


def test_gpus_without_xid_events_have_no_xid_series() -> None:
    c = _collector(FakeNvml([geforce()]))
    try:
        c.open()
        fams = _scrape(c)
    finally:
        c.close()
    assert c.nvml.xid_watch == "unsupported on these GPUs"
    assert "DCGM_FI_DEV_XID_ERRORS" not in fams  # unknown, not "no error"


def test_real_pynvml_without_a_driver_is_a_clean_absence() -> None:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver")
    reader = NvmlReader()
    state = reader.open()
    assert not state.available and "NVML" in state.detail
    assert reader.read() == []
    reader.close()
