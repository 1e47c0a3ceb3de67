"""The GPU quick calibration on the H100: what a few llama-bench tests on the node buy a user whose
GPU has no measured entry.

The quick tests (`waveidp.bench.gpu_calibration`: pp128, pp512 and tg128 with -ngl 99 -fa 1, best
repetition) were run on the H100 in device call 18 (benchmarks/results/gpu/runs/device-call18.log,
commands in llama-bench-commands.txt) on the model that ships with Wave (a random-weight copy of
SmolLM2-135M Q4_1) and on a model of the user's choosing (the Llama-3.2-3B shape in q5_k_m). The fit
starts from the generic GPU prior (what `wave size` uses for a GPU it has no entry for) and is judged
on what it did not see: the other llama-bench tests of the same call and of earlier calls (pp64-2048,
the 8B in q4_k_m, q8_0 and f16), and the served H100 points of rounds 7 and 9 (`wave bench` runs,
replayed as `wave bench --predict` does). The shipped, fully measured H100 entry is shown beside.

    .venv/bin/python benchmarks/gpu_quick_calibration.py

writes benchmarks/results/gpu/quick_calibration.json and quick_calibration.png.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from waveidp import catalog
from waveidp.bench.gpu_calibration import FITTED, fit, predict_tokens_per_s
from waveidp.bench.llama_bench import parse_row
from waveidp.bench.predict import predict_runs
from waveidp.bench.quick_fit import Measured, median_error
from waveidp.sizing import Efficiency, efficiency_for

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks/results/gpu/runs"
OUT = ROOT / "benchmarks/results/gpu"
sys.path.insert(0, str(ROOT / "benchmarks/investigations/gpu"))
from fit_schedule import load_run  # noqa: E402

# llama-bench JSON -> the catalog model and quant of the file it ran
BENCHES = {
    "llama-bench-sweep-smollm2-135m-q4_1.json": ("smollm2-135m", "q4_1"),
    "llama-bench-sweep-llama-3.2-3b-q5_k_m.json": ("llama-3.2-3b", "q5_k_m"),
    "llama-bench-q4_k_m.json": ("llama-3.1-8b", "q4_k_m"),
    "llama-bench-q8_0.json": ("llama-3.1-8b", "q8_0"),
    "llama-bench-f16.json": ("llama-3.1-8b", "f16"),
    "llama-bench-gemma-3-270m-q4_k_m.json": ("gemma-3-270m", "q4_k_m"),
}
QUICK = {"llama-bench-sweep-smollm2-135m-q4_1.json", "llama-bench-sweep-llama-3.2-3b-q5_k_m.json"}
QUICK_TESTS = {"pp128", "pp512", "tg128"}
SERVED = ("-r7-", "-r9-")
KEYS = ("ttft_ms", "itl_ms", "output_tokens_per_s")


def tests(name: str) -> list[Measured]:
    """The rows of one recorded llama-bench JSON file (best repetition each) as calibration tests."""
    model, quant = BENCHES[name]
    spec = catalog.model(model)
    rows = json.loads((RUNS / name).read_text())
    return [
        Measured(parse_row(r, Path(r["model_filename"]), f"(recorded: {name})"), spec, quant) for r in rows
    ]


def quick_and_held_out() -> tuple[list[Measured], list[Measured]]:
    """The quick calibration's tests, and every other llama-bench test of the H100 runs."""
    all_tests = {name: tests(name) for name in BENCHES}
    quick = [t for n in QUICK for t in all_tests[n] if t.row.test in QUICK_TESTS]
    held = [t for n, ts in all_tests.items() for t in ts if n not in QUICK or t.row.test not in QUICK_TESTS]
    return quick, held


def served(eff: Efficiency) -> dict[str, dict[str, float]]:
    rels = sorted(
        str(p.parent.relative_to(RUNS))
        for p in RUNS.glob("*/*/results.json")
        if any(tag in str(p) for tag in SERVED)
    )
    rows = [r.model_dump() for rel in rels for r in predict_runs(load_run(rel), eff)]
    return {
        k: {
            "median_error": round(statistics.median(abs(r[k]["error_pct"]) for r in rows) / 100, 4),
            "worst": round(
                max(
                    max(r[k]["predicted"] / r[k]["measured"], r[k]["measured"] / r[k]["predicted"])
                    for r in rows
                ),
                3,
            ),
        }
        for k in KEYS
    } | {"points": {"n": float(len(rows))}}


def summary(
    hw: Any, label: str, eff: Efficiency, quick: list[Measured], held: list[Measured]
) -> dict[str, Any]:
    out: dict[str, Any] = {"factors": {k: getattr(eff, k) for k in FITTED}}
    for group, ts in (("quick_tests", quick), ("held_out_llama_bench", held)):
        out[group] = {kind: median_error(predict_tokens_per_s, hw, ts, eff, kind) for kind in ("pp", "tg")}
        ratios = [predict_tokens_per_s(hw, t, eff) / t.row.tokens_per_s for t in ts]
        out[group]["worst"] = max(max(r, 1 / r) for r in ratios)
    out["held_out_served"] = served(eff)
    print(f"{label}: quick tests {out['quick_tests']}, held-out llama-bench {out['held_out_llama_bench']}")
    print(f"   served (rounds 7 and 9): {out['held_out_served']}")
    return out


def main() -> None:
    os.environ["WAVE_HOME"] = tempfile.mkdtemp(prefix="wave-gpu-quick-")
    hw = catalog.hardware("h100-sxm")
    quick, held = quick_and_held_out()
    generic = efficiency_for("a-gpu-wave-has-no-entry-for", "llamacpp", kind="gpu")
    shipped = efficiency_for("h100-sxm", "llamacpp")
    fitted = fit(hw, quick, generic)
    doc = {
        "command": "python benchmarks/gpu_quick_calibration.py",
        "quick_tests": [
            {"model": t.spec.id, "quant": t.quant, "test": t.row.test, "tokens_per_s": t.row.tokens_per_s}
            for t in quick
        ],
        "held_out_tests": len(held),
        "generic_prior": summary(hw, "generic GPU prior", generic, quick, held),
        "quick_calibrated": summary(hw, "generic prior + quick calibration", fitted, quick, held),
        "shipped_h100_entry": summary(hw, "shipped H100 entry (fully measured)", shipped, quick, held),
    }
    (OUT / "quick_calibration.json").write_text(json.dumps(doc, indent=1) + "\n")
    _plot(doc, OUT / "quick_calibration.png")
    print(f"wrote {(OUT / 'quick_calibration.json').relative_to(ROOT)}")


def _plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["generic_prior", "quick_calibrated", "shipped_h100_entry"]
    metrics = [
        ("held_out_llama_bench", "pp", "llama-bench pp (held out)"),
        ("held_out_llama_bench", "tg", "llama-bench tg (held out)"),
        ("held_out_served", "ttft_ms", "served TTFT"),
        ("held_out_served", "itl_ms", "served ITL"),
        ("held_out_served", "output_tokens_per_s", "served tok/s"),
    ]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.27
    for i, label in enumerate(labels):
        vals = []
        for group, key, _ in metrics:
            v = doc[label][group][key]
            vals.append(100 * (v["median_error"] if isinstance(v, dict) else v))
        ax.bar([j + (i - 1) * width for j in range(len(metrics))], vals, width, label=label.replace("_", " "))
    ax.set_xticks(range(len(metrics)), [m[2] for m in metrics], fontsize=8)
    ax.set_ylabel("median |error| %")
    ax.set_yscale("log")
    ax.set_title("H100: quick llama-bench calibration from the generic GPU prior")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
