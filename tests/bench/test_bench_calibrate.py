"""`wave calibrate` on results whose 'measurements' come from known efficiency factors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench_support import wave

from waveidp.bench.calibrate import calibrate
from waveidp.bench.metrics import Distribution
from waveidp.bench.predict import deployment_record, predict_runs
from waveidp.bench.report import (
    BenchReport,
    HardwareInfo,
    LoadPointResult,
    LoadPointSummary,
    RunConfig,
    Target,
    TelemetrySummary,
    WarmupCount,
)
from waveidp.errors import InputError

CS = (1, 2, 4, 8)  # the measured concurrencies


def _dist(**stats: float) -> Distribution:
    return Distribution.model_validate({k: stats.get(k) for k in Distribution.model_fields} | {"count": 10})


def _summary() -> LoadPointSummary:
    """The figures prediction reads, as a measured load point of 10 requests has them."""
    empty = _dist()
    return LoadPointSummary(
        ttft_ms=_dist(p50=1.0, mean=1.0), itl_ms=_dist(p50=1.0), e2e_ms=_dist(mean=1.0), client_lag_ms=empty,
        output_tokens=_dist(mean=64), input_tokens=_dist(mean=300), output_tokens_per_s=1.0,
        requests_per_s=1.0, goodput_per_s=0.0, slo={}, duration_s=None, sent=10, completed=10, errors=0,
        errors_by_kind={}, error_examples={}, cancelled=0, resent_on_stale_connection=0,
        output_token_source="usage", input_token_source="usage", loop_delay_ms=empty,
    )  # fmt: skip


def results_doc(true_eff: Any, *, ramp_s: float = 0.0, point_warmup: int = 0) -> BenchReport:
    """A results.json as `wave bench --predict` writes it, measured on a device whose real
    efficiency is `true_eff` (the prediction with `true_eff` stands in for the measurement).
    No run plan (requests_planned 0): each point is predicted as the sizing model's default run."""
    dep = deployment_record("smollm2-135m", "q4_1", ["cpu-generic"], "llamacpp")
    telemetry = TelemetrySummary(
        seconds=1.0, gpus=[], nvml="ok", gpu_energy_j=None, gpu_energy_source=None, cpu_energy_j=None,
        cpu_energy_source="unavailable", energy_j=None, mean_power_w=None, tokens_per_joule=None,
        cost_per_million_tokens=None, price_kwh=None, cpu_percent_mean=None, ram_used_bytes_max=None,
    )  # fmt: skip
    point = {"load": "concurrency", "requests_planned": 0, "duration_planned_s": 0.0, "interrupted": False,
             "telemetry": telemetry, "telemetry_samples": [], "requests": []}  # fmt: skip
    runs = [LoadPointResult.model_validate({**point, "concurrency": c, "summary": _summary()}) for c in CS]
    doc = BenchReport(
        schema="wave-bench/1", command="wave bench", started_at="", partial=False,
        target=Target(url="http://127.0.0.1:1", model="m", endpoint="chat", ignore_eos=True, timeout_s=1.0),
        dataset={}, config=RunConfig(warmup=0, point_warmup=point_warmup, ramp_s=ramp_s, grace_s=0.0, seed=0,
                                     slo={}, price_kwh=None),
        deployment=dep, warmup=WarmupCount(requests=0, completed=0), versions={},
        hardware=HardwareInfo(cpu="cpu", logical_cpus=1, ram_bytes=1, gpus=[], platform="linux"), runs=runs,
    )  # fmt: skip
    for run, pred in zip(runs, predict_runs(doc, true_eff), strict=True):
        s = run.summary
        s.ttft_ms = s.ttft_ms.model_copy(update={"p50": pred.ttft_ms.predicted})
        s.itl_ms = s.itl_ms.model_copy(update={"p50": pred.itl_ms.predicted})
        s.output_tokens_per_s = pred.output_tokens_per_s.predicted
    return doc


def test_fit_recovers_the_factors_that_produced_the_measurements() -> None:
    from waveidp.sizing import efficiency_for

    shipped = efficiency_for("cpu-generic", "llamacpp")
    true_eff = shipped.model_copy(update={"decode_bandwidth": 0.2, "prefill_compute": 0.05,
                                          "step_overhead_s": 0.002})  # fmt: skip
    [fit] = calibrate([results_doc(true_eff)])
    assert (fit.hardware_id, fit.engine, fit.points) == ("cpu-generic", "llamacpp", 4)
    assert fit.error_before["itl_ms"] > 20  # the shipped factors are far from this "device"
    assert fit.error_after["ttft_ms"] < 1 and fit.error_after["itl_ms"] < 1
    assert fit.error_after["output_tokens_per_s"] < 1
    assert "fitted to 4 load point(s)" in fit.after.source


def test_cli_writes_the_calibration_that_sizing_then_reads(tmp_path: Path) -> None:
    from waveidp.sizing import efficiency_for

    # a slower host per step: SmolLM2's decode on the CPU prior is compute-bound, so a memory share
    # would not show in its ITL
    true_eff = efficiency_for("cpu-generic", "llamacpp").model_copy(update={"step_overhead_s": 0.003})
    results_doc(true_eff).save(tmp_path)
    out = tmp_path / "calibration.yaml"
    r = wave("calibrate", str(tmp_path), "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["written"] == str(out)
    assert report["fits"][0]["error_after_pct"]["itl_ms"] < report["fits"][0]["error_before_pct"]["itl_ms"]
    assert "cpu-generic" in out.read_text() and "llamacpp" in out.read_text()


def test_results_without_a_deployment_are_refused_with_the_fix() -> None:
    with pytest.raises(InputError, match="--device"):
        calibrate([results_doc(None).model_copy(update={"deployment": None, "runs": []})])
    r = wave("calibrate", "/nonexistent/results.json")
    assert r.returncode == 2 and "no such results file" in r.stderr


def test_bench_uses_only_the_public_sizing_api() -> None:
    """Predictions come through `waveidp.sizing`'s public names, so sizing can reorganise its modules."""
    import ast

    import waveidp.bench

    private = []
    for path in sorted(Path(waveidp.bench.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("waveidp.sizing._"):
                private.append(f"{path.name}:{node.lineno} {node.module}")
            if isinstance(node, ast.ImportFrom) and node.module == "waveidp.sizing":
                private += [
                    f"{path.name}:{node.lineno} {a.name}" for a in node.names if a.name.startswith("_")
                ]
    assert private == []


def test_prediction_is_the_steady_state_point_of_each_measured_shape() -> None:
    from waveidp.sizing import Deployment, PerfModel, steady_state_point

    doc = results_doc(None)
    rows = predict_runs(doc)
    d = Deployment.build("smollm2-135m", "q4_1", ["cpu-generic"], "llamacpp", context=4096)
    for row in rows:
        pt = steady_state_point(PerfModel(d), row.concurrency, 300, 64)
        assert row.itl_ms.predicted == pt.itl_ms
        assert row.ttft_ms.predicted == pt.ttft_ms


def test_the_recorded_arrival_pattern_picks_the_prediction() -> None:
    """A run with --ramp and --point-warmup is predicted as steady arrivals, its measured throughput
    taken as c x mean output / mean e2e; without them, as clients starting together; open-loop
    (--rate) runs are steady too."""
    from waveidp.sizing import Deployment, PerfModel, steady_state_point

    d = Deployment.build("smollm2-135m", "q4_1", ["cpu-generic"], "llamacpp", context=4096)
    burst = results_doc(None)
    steady = results_doc(None, ramp_s=5.0, point_warmup=8)
    for run in steady.runs:
        run.summary.e2e_ms = run.summary.e2e_ms.model_copy(update={"mean": 2000.0})
    ramp_only = results_doc(None, ramp_s=5.0, point_warmup=0)
    for doc, arrival in ((burst, "burst"), (steady, "steady"), (ramp_only, "burst")):
        for row in predict_runs(doc):
            assert row.arrival == arrival
            pt = steady_state_point(PerfModel(d), row.concurrency, 300, 64, arrival)  # type: ignore[arg-type]
            assert row.ttft_ms.predicted == pt.ttft_ms
    c8 = next(r for r in predict_runs(steady) if r.concurrency == 8)
    assert c8.output_tokens_per_s.measured == pytest.approx(8 * 64 / 2.0)
    rate = results_doc(None)
    rate.runs[0] = rate.runs[0].model_copy(update={"load": "rate", "concurrency": None, "rate": 2.0})
    assert predict_runs(rate)[0].arrival == "steady"
