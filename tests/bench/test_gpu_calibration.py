"""The GPU quick calibration (waveidp.bench.gpu_calibration) on what llama-bench measured on an H100:
fitted from the generic GPU prior on the quick tests (pp128, pp512, tg128 of SmolLM2 and of a 3B
model), it predicts the llama-bench tests it did not see (other prompt sizes, the 8B in three
formats, Gemma 3) within the error the fully measured H100 entry has."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from waveidp import catalog
from waveidp.bench.gpu_calibration import fit, predict_tokens_per_s
from waveidp.bench.llama_bench import BenchRow
from waveidp.bench.quick_fit import Measured, median_error
from waveidp.sizing import efficiency_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import gpu_quick_calibration as quick_run

H100 = catalog.hardware("h100-sxm")


def _split() -> tuple[list[Measured], list[Measured]]:
    if not (quick_run.RUNS / "llama-bench-q8_0.json").exists():
        pytest.skip("the H100 results are not in this checkout")
    tests = {name: quick_run.tests(name) for name in quick_run.BENCHES}
    quick = [t for n in quick_run.QUICK for t in tests[n] if t.row.test in quick_run.QUICK_TESTS]
    held = [
        t
        for n, ts in tests.items()
        for t in ts
        if n not in quick_run.QUICK or t.row.test not in quick_run.QUICK_TESTS
    ]
    return quick, held


def test_quick_tests_calibrate_an_unknown_gpu_for_the_tests_it_did_not_see() -> None:
    quick, held = _split()
    assert len(quick) == 6 and len(held) >= 14
    generic = efficiency_for("a-gpu-wave-has-no-entry-for", "llamacpp", kind="gpu")
    fitted = fit(H100, quick, generic)
    for kind in ("pp", "tg"):
        before = median_error(predict_tokens_per_s, H100, held, generic, kind)
        after = median_error(predict_tokens_per_s, H100, held, fitted, kind)
        assert before is not None and after is not None
        # the generic prior is 0.4-4x off on an H100's prompts; its decode 15% (80% before the
        # CUDA-core decode share): the calibration brings both below 30% and improves each
        assert after <= 0.3 and after < before, (kind, before, after)
        # its own prompt tests stay ~25-30% off: a short prompt's launch cost is per batch (pp128 runs
        # slower than the model's per-token cost says, pp512 faster), which no scale removes
        assert median_error(predict_tokens_per_s, H100, quick, fitted, kind) <= 0.3  # type: ignore[operator]


def test_llama_bench_generation_has_no_server_sampling() -> None:
    """llama-bench samples nothing: its tg rate is the decode step without llama-server's per-slot
    sampling over the vocabulary (0.77 ms for Llama 3's on the H100 host)."""
    eff = efficiency_for("h100-sxm", "llamacpp")
    row = BenchRow(Path("8b.gguf"), 16, 0, 128, 220.0, 220.0, (220.0,), "llama-bench", gpu_layers=99)
    test = Measured(row, catalog.model("llama-3.1-8b"), "q8_0")
    with_sampling = eff.model_copy(update={"sequence_step_s": 0.01})
    assert predict_tokens_per_s(H100, test, eff) == pytest.approx(
        predict_tokens_per_s(H100, test, with_sampling)
    )
