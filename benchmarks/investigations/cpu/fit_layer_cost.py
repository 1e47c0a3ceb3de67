"""Fit the CPU prior's per-layer cost outside the matmuls (`layer_step_flops`, `layer_token_flops` in
src/waveidp/sizing/data/cpu_kernels.yaml) to llama-bench sweeps of the narrow packaged models.

What it is: besides its matmuls and attention, every layer of a llama.cpp graph runs norms, rope,
activations and the int8 quantization of its activations, and dispatches and finishes 20-30 ops. On
a 1B model with 2048-wide layers that is about 1% of a token; on SmolLM2-135M (30 layers, 576
wide) and Gemma 3 270M (18 layers, 640 wide) it is 6-20%, which the kernel cells (fitted on the 1B)
do not see. The cost is a time per layer per graph evaluation (`layer_step_flops`) plus one per layer
per token (`layer_token_flops`), both written as the FLOPs one core's fp32 peak does in that time, so
they scale with the core's clock and width as the cells do.

Input: the native build's sweep of `benchmarks/sizing_cpu.py --no-calibrate` on this machine (one
thread, timed by CPU time): SmolLM2 and Gemma at prompts 2, 16 and 128 and 32 generated tokens.
The kernel cells stay as fitted (`fit_kernels.py`); the two constants minimise the squared log error
of the packaged models' rows through the sizing model itself (`PerfModel`). The generated 1B's rows
are reported, not fitted: the cells were fitted on them, so refit the cells after writing these
(fit_kernels.py) and then these again, until neither moves.

    .venv/bin/python benchmarks/investigations/cpu/fit_layer_cost.py --clock-ghz 3.675 \\
        --core-bandwidth-gb-s 25 benchmarks/results/cpu/sweep_native.json --write
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from fit_kernels import ROOT, TIER_FLAGS, Predictor, reference_cpu, use

from waveidp.bench.calibrate import nelder_mead
from waveidp.engines.local_files import embedded_model_path
from waveidp.models import gemma_model_path
from waveidp.sizing import Efficiency
from waveidp.sizing import _cpu as cpu

PACKAGED = ("smollm2-135m", "gemma-3-270m")
EFF = Efficiency(decode_bandwidth=1.0, prefill_compute=1.0, decode_compute=1.0, step_overhead_s=0.0002)


def local_path(row: dict[str, Any]) -> str:
    """The row's GGUF on this checkout (a sweep records the paths of the checkout that ran it)."""
    if Path(row["path"]).exists():
        return str(row["path"])
    if row["model"].startswith("smollm2"):
        return str(embedded_model_path())
    if row["model"].startswith("gemma"):
        return str(gemma_model_path())
    return str(ROOT / "build/models" / row["file"])


def sweep_rows(paths: list[Path]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        for r in json.loads(path.read_text())["rows"]:
            if r["build"] != "native" or r["threads"] != 1:
                continue
            out.append(
                {
                    "model": r["model"],
                    "test": r["test"],
                    "quant": r["quant"],
                    "path": local_path(r),
                    "n_prompt": r["n_prompt"],
                    "n_gen": r["n_gen"],
                    "measured": r["measured_tokens_per_s"],
                    "packaged": r["model"].split()[0] in PACKAGED,
                }
            )
    return out


def write_constants(path: Path, step: float, token: float) -> None:
    """Set the two constants in the YAML's head (added after `threads_falloff` if absent)."""
    text = path.read_text()
    for key, value in (("layer_step_flops", step), ("layer_token_flops", token)):
        line = f"{key}: {value:.4g}"
        if re.search(rf"^{key}:", text, flags=re.M):
            text = re.sub(rf"^{key}:.*$", line, text, flags=re.M)
        else:
            text = re.sub(r"^(threads_falloff:.*)$", rf"\1\n{line}", text, count=1, flags=re.M)
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweeps", type=Path, nargs="+", help="sizing_cpu.py --no-calibrate JSON files")
    ap.add_argument("--clock-ghz", type=float, required=True, help="clock.c on this machine")
    ap.add_argument("--core-bandwidth-gb-s", type=float, required=True, help="the probe's one-core figure")
    ap.add_argument("--write", action="store_true", help="write the two constants into cpu_kernels.yaml")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cpu/layer_fit_native.json")
    args = ap.parse_args()

    rows = [r for r in sweep_rows(args.sweeps) if Path(r["path"]).exists()]
    hw = reference_cpu(args.clock_ghz, args.core_bandwidth_gb_s * 1e9).model_copy(
        update={"cpu_flags": TIER_FLAGS["avx512_vnni_bf16"]}
    )
    predict = Predictor()
    base = cpu.table()
    peak = hw.dense_flops["fp32"]

    def at(x: list[float]) -> cpu.CpuTable:
        # in microseconds of the reference core, to keep the search's steps on one scale
        step_us, token_us = (10 * math.exp(v) for v in x)
        return base.model_copy(
            update={"layer_step_flops": step_us * 1e-6 * peak, "layer_token_flops": token_us * 1e-6 * peak}
        )

    def ratios(table: cpu.CpuTable, which: list[dict[str, Any]]) -> list[float]:
        use(table)
        return [predict(hw, r, EFF) / r["measured"] for r in which]

    fitted_on = [r for r in rows if r["packaged"]]
    x = nelder_mead(
        lambda v: sum(math.log(q) ** 2 for q in ratios(at(v), fitted_on)), [0.0, 0.0], step=0.5, iters=300
    )
    fitted = at(x)
    none = base.model_copy(update={"layer_step_flops": 0.0, "layer_token_flops": 0.0})
    before, after = ratios(none, rows), ratios(fitted, rows)
    report = []
    for r, b, a in zip(rows, before, after, strict=True):
        print(f"{r['model']:24s} {r['test']:6s} measured {r['measured']:7.1f}  ratio {b:.3f} -> {a:.3f}")
        report.append(
            {
                **{k: r[k] for k in ("model", "test", "measured", "packaged")},
                "ratio_without": b,
                "ratio_with": a,
            }
        )

    def median(which: list[float], packaged: bool) -> float:
        return statistics.median(
            abs(q - 1) for q, r in zip(which, rows, strict=True) if r["packaged"] == packaged
        )

    summary = {
        f"{name} median error": {"without": round(median(before, pk), 4), "with": round(median(after, pk), 4)}
        for name, pk in (("packaged (fitted)", True), ("generated 1B (reported)", False))
    }
    step_s, token_s = fitted.layer_step_flops / peak, fitted.layer_token_flops / peak
    print(
        f"layer_step_flops {fitted.layer_step_flops:.4g} ({step_s * 1e6:.1f} us per layer per graph), "
        f"layer_token_flops {fitted.layer_token_flops:.4g} ({token_s * 1e6:.2f} us per layer per token) "
        f"at {args.clock_ghz} GHz; {summary}"
    )
    if args.write:
        write_constants(
            ROOT / "src/waveidp/sizing/data/cpu_kernels.yaml",
            fitted.layer_step_flops,
            fitted.layer_token_flops,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "command": " ".join(sys.argv),
        "clock_ghz": args.clock_ghz,
        "layer_step_flops": fitted.layer_step_flops,
        "layer_token_flops": fitted.layer_token_flops,
        "layer_step_us": step_s * 1e6,
        "layer_token_us": token_s * 1e6,
        "summary": summary,
        "rows": report,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
