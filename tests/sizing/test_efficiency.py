"""Efficiency factors: shipped defaults with sources, and the user's calibration file winning."""

from __future__ import annotations

from pathlib import Path

import pytest

from waveidp.errors import ConfigError
from waveidp.sizing import Efficiency, calibration_path, efficiency_for, save_calibration


def test_every_shipped_default_has_a_source() -> None:
    for kind, engine in [("gpu", "vllm"), ("gpu", "llamacpp"), ("cpu", "llamacpp"), ("soc", "llamacpp")]:
        eff = efficiency_for(f"unknown-{kind}", engine, kind=kind)
        assert 0 < eff.decode_bandwidth <= 1
        assert len(eff.source) > 20


def test_calibration_file_wins_and_merges(tmp_path: Path) -> None:
    measured = Efficiency(
        decode_bandwidth=0.42, prefill_compute=0.2, step_overhead_s=0.0003, source="bench run"
    )
    path = save_calibration({("rtx-4090", "llamacpp"): measured})
    assert path == calibration_path() and path.exists()
    save_calibration({("h100-sxm", "vllm"): measured.model_copy(update={"decode_bandwidth": 0.8})})
    assert efficiency_for("rtx-4090", "llamacpp", kind="gpu") == measured
    assert efficiency_for("h100-sxm", "vllm", kind="gpu").decode_bandwidth == 0.8
    assert efficiency_for("rtx-4090", "vllm", kind="gpu").decode_bandwidth != 0.42


def test_broken_calibration_file_names_file_and_field() -> None:
    path = calibration_path()
    path.write_text(
        "devices:\n  rtx-4090:\n    llamacpp: {decode_bandwidth: 3, prefill_compute: 0.2, "
        "step_overhead_s: 0}\n"
    )
    with pytest.raises(ConfigError, match=r"calibration.yaml: devices.rtx-4090.llamacpp.decode_bandwidth"):
        efficiency_for("rtx-4090", "llamacpp", kind="gpu")


def test_per_quant_bandwidth_multiplier_slows_only_that_quant() -> None:
    from waveidp.sizing import Deployment, PerfModel

    eff = efficiency_for("h100-sxm", "llamacpp")
    assert eff.decode_bandwidth_by_quant["q4_k_m"] < 1  # k-quant kernels stream slower than q8_0's
    assert eff.decode_bandwidth_for("q4_k_m") == pytest.approx(eff.decode_bandwidth * 0.68)
    assert eff.decode_bandwidth_for("q8_0") == eff.decode_bandwidth
    assert eff.decode_bandwidth_for("f16") == pytest.approx(min(1.0, eff.decode_bandwidth * 1.21))
    q4 = Deployment.build("llama-3.1-8b", "q4_k_m", ["h100-sxm"], "llamacpp")
    flat = eff.model_copy(update={"decode_bandwidth_by_quant": {}})
    ratio = PerfModel(q4).decode_step_seconds(1, 600) / PerfModel(q4, flat).decode_step_seconds(1, 600)
    assert 1.2 < ratio < 1 / 0.68  # the weight-streaming part is 1/0.68 slower, the fixed overhead is not


def test_per_quant_prefill_multiplier_speeds_only_that_quants_prompts() -> None:
    """llama.cpp runs f16 prompts on cuBLAS (llama-bench pp512 on the H100: 2x q8_0's rate)."""
    from waveidp.sizing import Deployment, PerfModel

    eff = efficiency_for("h100-sxm", "llamacpp")
    f16 = Deployment.build("llama-3.1-8b", "f16", ["h100-sxm"], "llamacpp")
    q8 = Deployment.build("llama-3.1-8b", "q8_0", ["h100-sxm"], "llamacpp")
    assert eff.prefill_compute_for("f16") == pytest.approx(eff.prefill_compute * 7.03)
    assert eff.prefill_compute_for("q8_0") == eff.prefill_compute
    ratio = PerfModel(q8).prefill_token_seconds(512) / PerfModel(f16).prefill_token_seconds(512)
    assert ratio == pytest.approx(21185 / 10635, rel=0.02)  # what llama-bench measured
    flat = eff.model_copy(update={"prefill_compute_by_quant": {}})
    assert PerfModel(f16, flat).prefill_token_seconds(512) > 3 * PerfModel(f16).prefill_token_seconds(512)
    # decode keeps its own factors
    assert PerfModel(f16, flat).decode_step_seconds(1, 600) == PerfModel(f16).decode_step_seconds(1, 600)


def test_bad_per_quant_multiplier_names_the_quant(tmp_path: Path) -> None:
    calibration_path().write_text(
        "devices:\n  rtx-4090:\n    llamacpp: {decode_bandwidth: 0.5, prefill_compute: 0.2, "
        "step_overhead_s: 0, decode_bandwidth_by_quant: {q4_k_m: -1}}\n"
    )
    with pytest.raises(ConfigError, match=r"devices.rtx-4090.llamacpp.decode_bandwidth_by_quant.q4_k_m"):
        efficiency_for("rtx-4090", "llamacpp", kind="gpu")
