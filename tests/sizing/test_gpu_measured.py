"""The shipped H100 llama.cpp entry against every H100 measurement (benchmarks/results/gpu/runs,
`wave bench` closed-loop runs replayed by the scheduler simulation; issue 7's targets).

Fitted: the 10 points run with `--cache-ram 0` (benchmarks/investigations/gpu/fit_schedule.py). Held out:
every run with llama-server's default host prompt cache (calls 1-14), and round 7 (calls 15-16), measured
after the entry was frozen."""

from __future__ import annotations

import re
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest

from waveidp.bench.predict import predict_runs
from waveidp.bench.report import DeploymentRecord

GPU = Path(__file__).resolve().parents[2] / "benchmarks/investigations/gpu"
sys.path.insert(0, str(GPU))
from fit_schedule import FIT, RUNS, load_run  # noqa: E402

ROUND = re.compile(r"-r[789]-")  # rounds 7-9, measured after the entry was set
TARGET_MEDIAN_PCT = {"ttft_ms": 25.0, "itl_ms": 15.0, "output_tokens_per_s": 15.0}
# The one held-out point off by more than 2x (README, round 7), bounded so that a change that makes it
# worse fails: (run, concurrency) -> {metric: (lowest, highest) predicted/measured}. Call 5: a
# 158-token c=16 burst on a server that earlier points had left stalled (ITL 46.9 ms; the same point
# on a fresh server in call 8: 18.9 ms, predicted within 8%).
KNOWN_MISSES = {
    ("llama8b-q8_0-heldout/burst128", 16): {"itl_ms": (0.3, 0.5), "output_tokens_per_s": (2.0, 2.7)},
}


def _all_runs() -> list[str]:
    return sorted(
        str(p.parent.relative_to(RUNS))
        for p in RUNS.glob("*/*/results.json")
        if "transformers" not in str(p) and p.parent.name != "gateway"
    )


def _rows(rels: list[str]) -> list[dict[str, Any]]:
    if not rels or not (RUNS / rels[0] / "results.json").exists():
        pytest.skip("the H100 results are not in this checkout")
    return [dict(r.model_dump(), run=rel) for rel in rels for r in predict_runs(load_run(rel))]


def _deployment(rel: str) -> DeploymentRecord:
    deployment = load_run(rel).deployment
    assert deployment is not None, rel
    return deployment


def _ratio(r: dict[str, Any], key: str) -> float:
    return float(r[key]["predicted"] / r[key]["measured"])


def test_fitted_cache_off_points_meet_the_targets() -> None:
    rows = _rows(FIT)
    assert len(rows) == 10
    for key, target in TARGET_MEDIAN_PCT.items():
        assert statistics.median(abs(r[key]["error_pct"]) for r in rows) <= target, key
        assert all(0.67 < _ratio(r, key) < 1.5 for r in rows), key


def test_held_out_cache_on_points_meet_the_median_targets_and_all_but_one_stay_within_2x() -> None:
    rels = [r for r in _all_runs() if not ROUND.search(r) and _deployment(r).prompt_cache]
    rows = _rows(rels)
    assert len(rows) == 81
    for key, target in TARGET_MEDIAN_PCT.items():
        assert statistics.median(abs(r[key]["error_pct"]) for r in rows) <= target, key
        for r in rows:
            lo, hi = KNOWN_MISSES.get((r["run"], r["concurrency"]), {}).get(key, (0.5, 2.0))
            assert lo < _ratio(r, key) < hi, (key, r["run"], r["concurrency"], _ratio(r, key))


def test_round7_points_measured_after_the_entry_was_frozen() -> None:
    rows = _rows([r for r in _all_runs() if "-r7-" in r])
    assert len(rows) == 17
    for key, target in TARGET_MEDIAN_PCT.items():
        assert statistics.median(abs(r[key]["error_pct"]) for r in rows) <= target, key
        assert all(0.5 < _ratio(r, key) < 2 for r in rows), key
    assert {_deployment(r).model for r in {row["run"] for row in rows}} == {
        "llama-3.1-8b",
        "smollm2-135m",
        "gemma-3-270m",
    }


def test_round8_f16_points_held_out_of_every_fit() -> None:
    """The f16 8B (cuBLAS prompts) with its multipliers taken from llama-bench alone."""
    rows = _rows([r for r in _all_runs() if "-r8-" in r])
    assert len(rows) == 4 and {r["concurrency"] for r in rows} == {1, 8, 16, 32}
    for key, target in TARGET_MEDIAN_PCT.items():
        assert statistics.median(abs(r[key]["error_pct"]) for r in rows) <= target, key
        assert all(0.67 < _ratio(r, key) < 1.5 for r in rows), key


def test_round9_a_shape_and_quant_no_fit_has_seen() -> None:
    """The Llama-3.2-3B shape in q5_k_m (~1k-token prompts, 128 output tokens, fresh servers), measured
    after the entry was set; its one new factor (q5_k_m's decode share) comes from llama-bench alone."""
    rows = _rows([r for r in _all_runs() if "-r9-" in r])
    assert len(rows) == 6 and {r["arrival"] for r in rows} == {"burst", "steady"}
    for key, target in TARGET_MEDIAN_PCT.items():
        assert statistics.median(abs(r[key]["error_pct"]) for r in rows) <= target, key
        assert all(0.67 < _ratio(r, key) < 1.5 for r in rows), key


def test_steady_arrivals_are_predicted_as_steady() -> None:
    """Spread-out clients (ramp ~ one request, first round excluded) see a short TTFT; the prediction
    that results.json's config selects follows them instead of the burst's convoy."""
    rows = _rows([f"llama8b-q8_0-heldout/{n}" for n in ("steady16", "steady64")])
    assert {r["arrival"] for r in rows} == {"steady"}
    burst64 = next(r for r in _rows(["llama8b-q8_0/direct"]) if r["concurrency"] == 64)
    steady64 = next(r for r in rows if r["concurrency"] == 64)
    assert burst64["arrival"] == "burst"
    for side in ("measured", "predicted"):
        assert burst64["ttft_ms"][side] > 5 * steady64["ttft_ms"][side]


def test_h100_ttft_grows_with_concurrency_as_measured() -> None:
    rows = _rows(["llama8b-q4_k_m/direct"])
    measured = [r["ttft_ms"]["measured"] for r in rows]
    predicted = [r["ttft_ms"]["predicted"] for r in rows]
    assert predicted == sorted(predicted)
    assert predicted[-1] / predicted[0] == pytest.approx(measured[-1] / measured[0], rel=0.5)
