"""The CPU quick calibration (waveidp.bench.node_calibration) fits only the factors its tests can
see, so that a factor the tests are blind to keeps the prior's value instead of absorbing noise."""

from __future__ import annotations

from pathlib import Path

import pytest

from waveidp import catalog
from waveidp.bench.llama_bench import BenchRow
from waveidp.bench.node_calibration import fit, fitted_names, predict_tokens_per_s
from waveidp.bench.quick_fit import Measured
from waveidp.catalog import ModelSpec
from waveidp.sizing import efficiency_of

# two cores of a Zen 4 EPYC VM at its nominal 2.6 GHz, as `wave fleet detect` describes
# benchmarks/sizing_cpu.py's machine
VM = catalog.hardware("ryzen-9-9900x").model_copy(
    update={
        "cores": 2,
        "dense_flops": {"fp32": 166.4e9, "bf16": 332.8e9, "int8": 665.6e9},
        "core_bandwidth_bytes_per_s": 23e9,
        "memory_bandwidth_bytes_per_s": 28.75e9,
    }
)


def _test(spec: ModelSpec, quant: str, n_prompt: int, n_gen: int) -> Measured:
    row = BenchRow(Path(f"{spec.id}.gguf"), 1, n_prompt, n_gen, 1.0, 1.0, (1.0,), "llama-bench -t 1")
    return Measured(row, spec, quant)


def _measured_as(truth: dict[str, float], tests: list[Measured]) -> list[Measured]:
    """`tests` with the rates sizing predicts under the factors `truth` (a node whose kernels run at
    that scale)."""
    eff = efficiency_of(VM, "llamacpp").model_copy(update=truth)
    out = []
    for t in tests:
        rate = predict_tokens_per_s(VM, t, eff)
        row = BenchRow(t.row.model, 1, t.row.n_prompt, t.row.n_gen, rate, rate, (rate,), t.row.command)
        out.append(Measured(row, t.spec, t.quant))
    return out


def test_a_factor_the_quick_tests_cannot_see_keeps_the_prior() -> None:
    """One thread of a small model is compute-bound: its tests pin the compute scales, not the
    share of the memory's wall (nor a 0.2 ms step overhead in a 12 ms token)."""
    prior = efficiency_of(VM, "llamacpp")
    small = [_test(catalog.model("smollm2-135m"), "q4_1", p, g) for p, g in ((128, 0), (0, 32))]
    assert set(fitted_names(VM, small, prior)) == {"prefill_compute", "decode_compute"}
    fitted = fit(VM, _measured_as({"prefill_compute": 1.4, "decode_compute": 1.3}, small), prior)
    assert fitted.prefill_compute == pytest.approx(1.4, rel=0.03)
    assert fitted.decode_compute == pytest.approx(1.3, rel=0.03)
    assert fitted.decode_bandwidth == prior.decode_bandwidth

    # an 8B in f16 streams 16 GB per token: its tg test sees the bandwidth, which is then fitted
    wide = [*small, _test(catalog.model("llama-3.1-8b"), "f16", 0, 32)]
    assert "decode_bandwidth" in fitted_names(VM, wide, prior)
    fitted = fit(VM, _measured_as({"decode_bandwidth": 0.6}, wide), prior)
    assert fitted.decode_bandwidth == pytest.approx(0.6, rel=0.05)
