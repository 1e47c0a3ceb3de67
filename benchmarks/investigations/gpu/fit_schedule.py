"""Fit the H100 llama.cpp entry's prefill factors for the scheduler simulation
(`waveidp.sizing._schedule`) on the runs without llama-server's host prompt cache, and write them.

    .venv/bin/python benchmarks/investigations/gpu/fit_schedule.py

writes benchmarks/results/gpu/schedule_fit.json.

Fitted: prefill_compute, prefill_layer_token_s and first_token_s, by coordinate descent
(golden-section in log space, five passes from a fixed start) on the squared log error of TTFT, ITL
and output tok/s
p50 of every `--cache-ram 0` run (8B q4_k_m/q8_0 and SmolLM2, bursts c = 4-32 and steady c = 12):
there nothing but the scheduler, the prefill and the decode acts. The decode factors stay those of
the closed-form model's `wave calibrate` fit over the 8B 542-token bursts.
The f16 multipliers (`prefill_compute_by_quant`, `decode_bandwidth_by_quant`) come from the engine's
own figures alone: llama-bench pp512 and tg128 of the f16 8B against q8_0's (runs/llama-bench-*.json;
llama.cpp runs f16 prompts on cuBLAS, GGUF quants on its own int8 kernels), so the served f16 points
stay held out. host_copy_bytes_per_s is not fitted: llama-server's own log gives it (one 147.6 MiB
prompt-cache entry saved every ~118 ms in runs/device-call9.log, 1.3 GB/s). So every run with the
cache on is held out (benchmarks/investigations/gpu/analyze.py).
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from waveidp.bench.metrics import Metric
from waveidp.bench.predict import PREDICTED, predict_runs
from waveidp.bench.report import BenchReport, Prediction
from waveidp.sizing import efficiency_for

ROOT = Path(__file__).resolve().parents[3]
RUNS = ROOT / "benchmarks/results/gpu/runs"
FIT = [
    "llama8b-q8_0-r4c-cacheoff/burst512",
    "llama8b-q4_k_m-r5-off4/burst768",
    "llama8b-q4_k_m-r5-off12/burst768",
    "llama8b-q4_k_m-r5-s12off/steady768x12",
    "llama8b-q8_0-r6-np20off/burst768",
    "smollm2-135m-q4_1-r4c-cacheoff/burst512",
    "smollm2-135m-q4_1-r5-off24/burst512",
]
PARAMS = {"prefill_compute": (0.02, 0.6), "prefill_layer_token_s": (1e-8, 1e-5), "first_token_s": (1e-4, 0.1)}
START = {"prefill_compute": 0.1, "prefill_layer_token_s": 1e-6, "first_token_s": 0.01}
HOST_COPY_BYTES_PER_S = 1.3e9  # runs/device-call9.log: 147.6 MiB per save, one every ~118 ms


def log_loss(rows: list[Prediction], metrics: Iterable[Metric]) -> float:
    values = [r.value(m) for r in rows for m in metrics]
    return sum(math.log(v.predicted / float(v.measured)) ** 2 for v in values)


def golden(f: Callable[[float], float], lo: float, hi: float, steps: int) -> float:
    """Minimum of f over [lo, hi] in log space (f is unimodal here)."""
    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    for _ in range(steps):
        c, d = b - g * (b - a), a + g * (b - a)
        if f(math.exp(c)) < f(math.exp(d)):
            b = d
        else:
            a = c
    return math.exp((a + b) / 2)


def load_run(rel: str) -> BenchReport:
    """results.json with the server settings its deployment record lacks (slots, prompt cache)."""
    report = BenchReport.load(RUNS / rel / "results.json")
    commands = (RUNS / rel).parent.joinpath("commands.txt").read_text().splitlines()
    server = next(line for line in commands if line.split()[0].endswith("llama-server"))
    args = server.split()
    assert report.deployment is not None, rel
    report.deployment.parallel = int(args[args.index("-np") + 1])
    report.deployment.prompt_cache = "--cache-ram 0" not in server
    return report


def llama_bench(quant: str) -> tuple[float, float]:
    """(pp512, tg128) tokens/s of the random 8B in `quant` as llama-bench measured them."""
    rows = json.loads((RUNS / f"llama-bench-{quant}.json").read_text())
    rate = {(r["n_prompt"], r["n_gen"]): r["avg_ts"] for r in rows}
    return rate[(512, 0)], rate[(0, 128)]


def f16_multipliers(eff: Any) -> dict[str, float]:
    """Multipliers that make the predicted f16/q8_0 ratios of prompt and generation rates what
    llama-bench measured (ratios: the absolute level is the fitted factors' business)."""
    from waveidp.sizing import Deployment, PerfModel

    (pp16, tg16), (pp8, tg8) = llama_bench("f16"), llama_bench("q8_0")

    def perf(quant: str, e: Any) -> Any:
        return PerfModel(Deployment.build("llama-3.1-8b", quant, ["h100-sxm"], "llamacpp"), e)

    q8 = perf("q8_0", eff)
    prompt_q8, step_q8 = q8.prefill_token_seconds(512), q8.decode_step_seconds(1, 576)

    def prompt_ratio(m: float) -> float:  # predicted f16/q8_0 prompt rate over measured; grows with m
        e = eff.model_copy(update={"prefill_compute_by_quant": {"f16": m}})
        return math.log(prompt_q8 / perf("f16", e).prefill_token_seconds(512) / (pp16 / pp8))

    def step_ratio(m: float) -> float:
        e = eff.model_copy(update={"decode_bandwidth_by_quant": {**eff.decode_bandwidth_by_quant, "f16": m}})
        return math.log(step_q8 / perf("f16", e).decode_step_seconds(1, 576) / (tg16 / tg8))

    # below the multipliers where the factor reaches 1 (capped: no longer monotone)
    return {
        "prefill_compute_by_quant.f16": float(f"{root(prompt_ratio, 0.1, 1 / eff.prefill_compute):.3g}"),
        "decode_bandwidth_by_quant.f16": float(f"{root(step_ratio, 0.1, 1 / eff.decode_bandwidth):.3g}"),
    }


def root(f: Callable[[float], float], lo: float, hi: float, steps: int = 40) -> float:
    """Where the increasing f crosses 0 in [lo, hi], by bisection in log space."""
    a, b = math.log(lo), math.log(hi)
    for _ in range(steps):
        mid = (a + b) / 2
        a, b = (mid, b) if f(math.exp(mid)) < 0 else (a, mid)
    return math.exp((a + b) / 2)


def main() -> None:
    os.environ["WAVE_HOME"] = tempfile.mkdtemp(prefix="wave-fit-")  # the shipped entry, no user file
    docs = [load_run(r) for r in FIT]
    # the same start whatever efficiency.yaml holds now, so the fit reproduces
    eff = efficiency_for("h100-sxm", "llamacpp").model_copy(
        update={**START, "host_copy_bytes_per_s": HOST_COPY_BYTES_PER_S}
    )

    def loss(e: Any) -> float:
        return log_loss([row for d in docs for row in predict_runs(d, e)], PREDICTED)

    for _ in range(5):
        for name, (lo, hi) in PARAMS.items():
            best = golden(lambda v, n=name, e=eff: loss(e.model_copy(update={n: v})), lo, hi, 24)
            eff = eff.model_copy(update={name: float(f"{best:.3g}")})
            print(f"{name} = {best:.4g}  loss {loss(eff):.4f}", file=sys.stderr)
    out = {
        "command": "python benchmarks/investigations/gpu/fit_schedule.py",
        "f16_from_llama_bench": f16_multipliers(eff),
        "fitted_on": FIT,
        "factors": {k: getattr(eff, k) for k in (*PARAMS, "host_copy_bytes_per_s")},
        "loss": round(loss(eff), 4),
    }
    (ROOT / "benchmarks/results/gpu/schedule_fit.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
