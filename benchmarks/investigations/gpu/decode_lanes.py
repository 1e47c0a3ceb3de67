"""Derive llama.cpp's per-step GPU cycles and its decode kernels' share of the CUDA-core peak from the
H100's llama-bench runs, and check both on the Jetson Orin Nano rows of the validation set.

    .venv/bin/python benchmarks/investigations/gpu/decode_lanes.py

writes benchmarks/results/gpu/decode_lanes.json.

Two terms of a single-token decode step (sizing/_roofline.py) that the H100 measures and a GPU
with few, slow SMs exposes:
- `step_overhead_cycles`: a fixed cost per step counted in GPU clock cycles (a step is a few hundred
  kernels: launches and tails). The H100's two smallest models (SmolLM2-135M q4_1, Gemma 3 270M
  q4_k_m, tg128), whose weights stream in under 0.1 ms, give it: their step time less their
  weights and lane work, times the H100's SM clock (1.98 GHz, NVML's maximum, at which its fp32
  peak of 67 TFLOPS is given).
- `decode_lane_compute`: the share of the fp32 (CUDA-core) peak that the matrix-vector kernels
  (MMVQ: each weight unpacked and dot-multiplied on the integer lanes, not on tensor cores) and
  FlashAttention's vector kernel reach. The 8B q4_k_m tg128 gives it: its step less the fixed
  cycles is that work (the H100's measured factors say the same thing through bytes: K-quants
  stream at 0.68 of q8_0).
Then the Orin rows (six models of 0.1-1B, four power modes that differ in SM count, GPU clock and
memory clock) are predicted with both terms and no Orin figure fitted.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from waveidp import catalog
from waveidp.sizing import Deployment, Efficiency, PerfModel

ROOT = Path(__file__).resolve().parents[3]
RUNS = ROOT / "benchmarks/results/gpu/runs"
OUT = ROOT / "benchmarks/results/gpu/decode_lanes.json"
H100_GHZ = 1.98  # NVML's maximum SM clock of the H100 SXM, the fp32 peak's clock (catalog/data/gpu_sms.yaml)
TG_CONTEXT = 64  # llama-bench tg128: the mean context of its 128 tokens
SMALL = [
    ("smollm2-135m", "q4_1", "llama-bench-smollm2-135m-q4_1.json"),
    ("gemma-3-270m", "q4_k_m", "llama-bench-gemma-3-270m-q4_k_m.json"),
]
LARGE = ("llama-3.1-8b", "q4_k_m", "llama-bench-q4_k_m.json")
Q5_K = ("llama-3.2-3b", "q5_k_m", "llama-bench-sweep-llama-3.2-3b-q5_k_m.json")


def tg128_seconds(name: str) -> float:
    rows = json.loads((RUNS / name).read_text())
    tg = next(r for r in rows if r["n_gen"] == 128 and r["n_prompt"] == 0)
    return 1.0 / float(tg["avg_ts"])


def h100_perf(model: str, quant: str, share: float | None) -> PerfModel:
    """The H100's measured bandwidth share, no fixed step, and the lane term at `share`."""
    d = Deployment.build(
        catalog.model(model), quant, [catalog.hardware("h100-sxm")], "llamacpp", context=4096
    )
    eff = PerfModel(d).eff.model_copy(update={"step_overhead_s": 0.0, "decode_lane_compute": share})
    return PerfModel(d, Efficiency.model_validate(eff.model_dump()))


def _lane_work(perf: PerfModel) -> float:
    """Seconds of CUDA-core work in one tg128 step of `perf` at a lane share of 1."""
    lanes = perf._lane_flops(perf._stages[0])
    assert lanes is not None
    return (perf._flops_token + perf._attn_flops_per_token(TG_CONTEXT)) / lanes


def derive() -> dict[str, float]:
    share: float | None = None
    cycles = 0.0
    for _ in range(4):  # the small models' lane work is a few percent of their step: iterate
        fixed = [
            tg128_seconds(f) - h100_perf(m, q, share).engine_step_seconds(1, TG_CONTEXT) for m, q, f in SMALL
        ]
        cycles = statistics.mean(fixed) * H100_GHZ * 1e9
        m, q, f = LARGE
        perf = h100_perf(m, q, 1.0)
        share = _lane_work(perf) / (tg128_seconds(f) - cycles / (H100_GHZ * 1e9))
    assert share is not None
    m, q, f = Q5_K  # Q5_K blocks: one more bit plane to unpack per weight
    perf = h100_perf(m, q, 1.0)
    q5_share = _lane_work(perf) / (tg128_seconds(f) - cycles / (H100_GHZ * 1e9))
    return {"step_overhead_cycles": cycles, "decode_lane_compute": share, "q5_k_multiplier": q5_share / share}


sys.path.insert(0, str(ROOT / "benchmarks"))


def orin_rows() -> list[dict[str, Any]]:
    import validation_set as vs

    return [
        m
        for m in vs.data()["measurements"]
        if m["devices"][0].startswith("jetson") and "smolperfbenchmark" in m["url"]
    ]


def check_orin() -> list[dict[str, object]]:
    import validation_set as vs

    rows = orin_rows()
    out = []
    for row in rows:
        predicted = vs.predict(row)
        out.append(
            {
                "id": row["id"],
                "measured_ms": round(1000 / row["measured"], 2),
                "predicted_ms": round(1000 / predicted, 2),
                "ratio": round(predicted / row["measured"], 3),
            }
        )
    return out


# The A78 cores' clock in each power mode (the report's Table 5) and how many run (NVIDIA's nvpmodel files)
CPU_MHZ = {
    "jetson-orin-nano-super": (1728, 6),
    "jetson-orin-nano-super-25w": (1420, 6),
    "jetson-orin-nano-super-15w": (1190, 6),
    "jetson-orin-nano-super-7w": (960, 4),
}


def _ingredients(row: dict[str, Any]) -> dict[str, float]:
    """What the candidates are made of, for one Orin row: the prior's streaming time and the host's
    sampling (both without the two H100 terms), and each candidate's regressor."""
    import validation_set as vs

    hw = vs.device(row["devices"][0])
    model = vs._models().get(row["model"]) or catalog.model(row["model"])
    d = Deployment.build(model, row["quant"], [hw], "llamacpp", context=4096)
    base = PerfModel(d).eff.model_copy(update={"decode_lane_compute": None, "step_overhead_cycles": 0.0})
    perf = PerfModel(d, Efficiency.model_validate(base.model_dump()))
    ctx = row["prompt_tokens"] + row["output_tokens"] // 2
    cpu_mhz, cores = CPU_MHZ[hw.id]
    assert hw.clock_ghz
    return {
        "measured": 1 / row["measured"],
        "base": perf.decode_step_seconds(1, ctx),
        "layer_gpu_cycles": model.layers / (hw.clock_ghz * 1e9),
        "token_gpu_cycles": 1 / (hw.clock_ghz * 1e9),
        "layer_cpu_cycles": model.layers / (cpu_mhz * 1e6),
        "token_cpu_work": 1 / (cpu_mhz * 1e6 * min(cores, 6) / 6),
        "cuda_core_work": (perf._flops_token + perf._attn_flops_per_token(ctx)) / hw.dense_flops["fp32"],
    }


def candidates() -> dict[str, dict[str, float]]:
    """Each single-cost candidate fitted on the MAXN rows (least squares on the relative error) and
    judged on the 25W, 15W and 7W rows it did not see."""
    rows = orin_rows()
    parts = [(_ingredients(r), r["devices"][0] == "jetson-orin-nano-super") for r in rows]
    out = {}
    for name in (
        "layer_gpu_cycles",
        "token_gpu_cycles",
        "layer_cpu_cycles",
        "token_cpu_work",
        "cuda_core_work",
    ):
        fit_on = [p for p, maxn in parts if maxn]
        num = sum(p[name] / p["measured"] * (1 - p["base"] / p["measured"]) for p in fit_on)
        k = num / sum((p[name] / p["measured"]) ** 2 for p in fit_on)
        held = [(p["base"] + k * p[name]) / p["measured"] for p, maxn in parts if not maxn]
        speed = [1 / x for x in held]
        out[name] = {
            "fitted_per_unit": k,
            "held_out_median_error": round(statistics.median(abs(x - 1) for x in speed), 4),
            "held_out_worst": round(max(max(x, 1 / x) for x in speed), 3),
        }
    return out


def main() -> None:
    factors = derive()
    print(
        f"H100: step_overhead_cycles {factors['step_overhead_cycles'] / 1e6:.2f} M "
        f"({factors['step_overhead_cycles'] / H100_GHZ / 1e6:.2f} ms at {H100_GHZ} GHz), "
        f"decode_lane_compute {factors['decode_lane_compute']:.4f} of the fp32 peak, "
        f"Q5_K blocks at {factors['q5_k_multiplier']:.3f} of it"
    )
    orin = check_orin()
    for r in orin:
        print(
            f"  {r['id']:64} measured {r['measured_ms']:6.2f} ms",
            f"predicted {r['predicted_ms']:6.2f}  {r['ratio']:.2f}x",
        )
    ratios = [float(str(r["ratio"])) for r in orin]
    held = [float(str(r["ratio"])) for r in orin if "-maxn-" not in str(r["id"])]
    held_median = statistics.median(abs(x - 1) for x in held)
    print(
        f"the same on the 25W/15W/7W rows: median {held_median:.0%},",
        f"worst {max(max(x, 1 / x) for x in held):.2f}x",
    )
    median = statistics.median(abs(x - 1) for x in ratios)
    worst = max(max(x, 1 / x) for x in ratios)
    print(
        f"Orin llama-server rows (shipped efficiency.yaml): median error {median:.0%},",
        f"worst {worst:.2f}x, n={len(orin)}",
    )
    cands = candidates()
    for name, c in cands.items():
        print(
            f"candidate {name} (fitted on MAXN): held-out median {c['held_out_median_error']:.0%}, "
            f"worst {c['held_out_worst']:.2f}x, per unit {c['fitted_per_unit']:.4g}"
        )
    OUT.write_text(
        json.dumps(
            {
                "command": "python benchmarks/investigations/gpu/decode_lanes.py",
                "h100_tg128_seconds": {f: tg128_seconds(f) for _, _, f in [*SMALL, LARGE]},
                "derived": factors,
                "orin_rows": orin,
                "single_cost_candidates_fitted_on_maxn": cands,
                "orin_median_error": round(median, 4),
                "orin_worst_ratio": round(worst, 3),
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
