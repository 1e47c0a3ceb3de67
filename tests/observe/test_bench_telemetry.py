"""The bench's energy figures come from the same collector as the exporter (pynvml stood in)."""

from __future__ import annotations

import time

import pytest
from fake_pynvml import FakeGpu, FakeNvml, h100

from waveidp.bench.telemetry import Telemetry


class _Counting(FakeNvml):
    """The driver's energy counter advances 500 mJ per read, as a GPU drawing power does."""

    def nvmlDeviceGetTotalEnergyConsumption(self, h: FakeGpu) -> int:
        assert h.energy_mj is not None
        h.energy_mj += 500
        return h.energy_mj


def test_energy_from_the_driver_counter_over_the_load_point() -> None:
    fake = _Counting([h100()])
    t = Telemetry(0.05, nvml_module=fake)
    t.start()
    time.sleep(0.3)
    t.stop()
    out = t.summary(output_tokens=1000, price_kwh=0.30)
    assert out.nvml == "ok" and out.gpus == ["NVIDIA H100 80GB HBM3"]
    assert out.gpu_energy_source == "nvml-energy-counter"
    reads = len(t.samples) + 2  # the opening and closing reads bound the counter
    assert out.gpu_energy_j == pytest.approx((reads - 1) * 0.5)
    assert out.tokens_per_joule == pytest.approx(1000 / out.gpu_energy_j)
    assert out.gpu_util_percent_mean == 97 and out.gpu_memory_used_bytes_max == 80_000 * 2**20
    assert all(s.gpus and s.gpus[0].power_w == pytest.approx(612.345) for s in t.samples)
    assert fake.shutdown_calls == 1


def test_without_an_energy_counter_the_power_samples_are_integrated() -> None:
    gpu = h100()
    gpu.energy_mj = None
    t = Telemetry(0.05, nvml_module=FakeNvml([gpu]))
    t.start()
    time.sleep(0.3)
    t.stop()
    out = t.summary(output_tokens=0, price_kwh=None)
    assert out.gpu_energy_source == "gpu-power-samples"
    assert out.gpu_energy_j == pytest.approx(612.345 * out.seconds)
