"""The CPU prior and `wave calibrate --quick` against llama-bench on the H100 machine's host CPU (a
16-core Emerald Rapids Xeon VM with AMX flags), on tests the calibration never ran.

Reads benchmarks/results/cpu/gpu_host/ (measured there by benchmarks/investigations/cpu/device_xeon.sh
and, for the f16 thread ladder, device_cpu.sh): `calibrate/wave.yaml`, the node `wave calibrate
--quick --device cpu` wrote (detection plus its 12 measurements: the packaged SmolLM2 and Gemma,
pp128/tg32 at 1, 8 and 16 threads), and llama-bench rows on the same AVX-512 VNNI/BF16 build. For
every row it predicts tokens/s twice through the path `wave size --fleet` takes
(`fleet.device_hardware` -> `efficiency_of` -> the sizing model): with the node as detected (the
prior) and with the factors this checkout's fit makes of the stored measurements (what `wave
calibrate` stores for them; with the code that ran there it reproduces the stored factors). Rows
are grouped:

- own: the calibration's 12 tests;
- held-out 1B, 2-16 threads: the generated 1B (q4_0, q4_k_m, q8_0, f16, bf16) at 2-16 threads,
  pp64/pp256/tg32; neither the calibration nor the kernel table's cells saw them;
- held-out packaged, 4 threads: SmolLM2 and Gemma at pp64/pp512/tg64;
- 1B, one thread: the rows the `avx512_fp16` tier's cells were fitted on (in sample for the prior,
  out of sample for the calibration) and the same tests from other calls.

Prints the median error and worst ratio (predicted / measured) per group and metric, before and
after calibration; writes the rows and summary to JSON and a plot.

    .venv/bin/python benchmarks/xeon_host_check.py
    PYTHONPATH=OTHER/src .venv/bin/python benchmarks/xeon_host_check.py --out OTHER.json  # another prior
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

import waveidp
from waveidp import fleet
from waveidp.bench.llama_bench import BenchRow
from waveidp.bench.node_calibration import calibration, measured_from_points, predict_tokens_per_s
from waveidp.bench.quick_fit import Measured, model_of
from waveidp.sizing import efficiency_of

ROOT = Path(__file__).resolve().parents[1]
HOST = ROOT / "benchmarks/results/cpu/gpu_host"
GROUPS = {
    "own": "the calibration's own 12 tests",
    "held-1b": "held out: the 1B at 2-16 threads",
    "held-packaged": "held out: packaged models at 4 threads",
    "1b-one-thread": "the 1B at one thread (the tier's fit rows, in sample for the prior)",
}
SOURCES = (  # (file, group for one thread, group for more); which call measured them: see README.md
    ("calibrate/held.jsonl", "1b-one-thread", "held-1b"),
    ("amx_build/held.jsonl", "1b-one-thread", "held-1b"),
    ("bench-sapphirerapids.jsonl", "1b-one-thread", "held-1b"),
    ("calibrate/sweep.jsonl", "1b-one-thread", "held-1b"),
    ("amx_build/zen4.jsonl", "1b-one-thread", "held-1b"),
    ("bench-zen4.jsonl", "1b-one-thread", "held-1b"),
)


def local_model(name: str) -> Path:
    """This checkout's copy of a model file llama-bench ran there (same shape and tensor types)."""
    from waveidp.engines.local_files import embedded_model_path
    from waveidp.models import gemma_model_path

    stem = Path(name).stem
    if stem.startswith("SmolLM2"):
        return embedded_model_path()
    if stem.startswith("gemma"):
        return gemma_model_path()
    quant = stem.removeprefix("llama-1b-")
    return ROOT / f"build/models/wave-random-llama-1b-{quant}.gguf"


def bench_rows() -> list[tuple[str, str, BenchRow]]:
    """(source file, group, row) of every llama-bench row beside the calibration."""
    out = []
    for name, one, more in SOURCES:
        for line in (HOST / name).read_text().splitlines():
            r = json.loads(line)
            path = local_model(r["model_filename"])
            samples = tuple(float(x) for x in r["samples_ts"])
            row = BenchRow(
                path, int(r["n_threads"]), int(r["n_prompt"]), int(r["n_gen"]), max(samples),
                float(r["avg_ts"]), samples, "",
            )  # fmt: skip
            group = one if row.threads == 1 else more
            if "SmolLM2" in path.name or "gemma" in path.name:
                group = "held-packaged"
            out.append((name, group, row))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HOST / "check.json")
    args = ap.parse_args()
    doc = yaml.safe_load((HOST / "calibrate/wave.yaml").read_text())
    node = fleet.Node.model_validate(doc["nodes"][0])
    device = next(d for d in node.devices if d.id == "cpu")
    stored = device.calibration["llamacpp"]
    bare = device.model_copy(update={"calibration": {}})
    hw_prior = fleet.device_hardware(bare, node)
    prior = efficiency_of(hw_prior, "llamacpp")
    points = [p.model_copy(update={"model": str(local_model(p.model))}) for p in stored.measurements]
    own = measured_from_points(points)
    fit = calibration(hw_prior, own, prior, stored.method)
    factors = fit.factors()
    calibrated = stored.model_copy(update={"factors": factors})
    hw_cal = fleet.device_hardware(bare.model_copy(update={"calibration": {"llamacpp": calibrated}}), node)
    eff_cal = efficiency_of(hw_cal, "llamacpp")

    tests: list[tuple[str, str, Measured]] = [("calibrate/wave.yaml", "own", m) for m in own]
    for name, group, row in bench_rows():
        spec, quant = model_of(row.model)
        tests.append((name, group, Measured(row, spec, quant)))
    rows = []
    for name, group, m in tests:
        before = predict_tokens_per_s(hw_prior, m, prior)
        after = predict_tokens_per_s(hw_cal, m, eff_cal)
        got = m.row.tokens_per_s
        rows.append(
            {
                "source": name, "group": group, "model": m.row.model.name, "quant": m.quant,
                "threads": m.row.threads, "test": m.row.test, "measured_tokens_per_s": round(got, 3),
                "prior": round(before, 3), "ratio_prior": round(before / got, 4),
                "calibrated": round(after, 3), "ratio_calibrated": round(after / got, 4),
            }
        )  # fmt: skip
    summary: dict[str, Any] = {}
    print(f"tier {fleet.device_hardware(bare, node).cpu_flags and _tier(hw_prior)}; fitted {factors}")
    print(f"{'group':16s} {'metric':3s} {'n':>3s}  {'prior':>16s}  {'calibrated':>16s}")
    for group in GROUPS:
        for kind in ("pp", "tg"):
            rs = [r for r in rows if r["group"] == group and r["test"].startswith(kind)]
            if not rs:
                continue
            s = {
                f"median_error_{w}": round(statistics.median(abs(r[f"ratio_{w}"] - 1) for r in rs), 4)
                for w in ("prior", "calibrated")
            } | {
                f"worst_ratio_{w}": max((r[f"ratio_{w}"] for r in rs), key=lambda v: max(v, 1 / v))
                for w in ("prior", "calibrated")
            }
            summary[f"{group} {kind}"] = {"n": len(rs), **s}
            print(
                f"{group:16s} {kind:3s} {len(rs):3d}  "
                f"{s['median_error_prior']:5.0%} (x{s['worst_ratio_prior']:.2f})  "
                f"{s['median_error_calibrated']:5.0%} (x{s['worst_ratio_calibrated']:.2f})"
            )
    out = {
        "command": " ".join(["python", *sys.argv]),
        "waveidp": str(Path(waveidp.__file__).parent),
        "tier": _tier(hw_prior),
        "groups": GROUPS,
        "stored_factors": dict(stored.factors),
        "refitted_factors": factors,
        "summary": summary,
        "rows": rows,
    }
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    plot(rows, args.out.with_suffix(".png"))


def _tier(hw: Any) -> str:
    from waveidp.sizing._cpu import tier_of

    return tier_of(hw.cpu_flags).id


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, kind in zip(axes, ("pp", "tg"), strict=True):
        for gi, group in enumerate(GROUPS):
            rs = [r for r in rows if r["group"] == group and r["test"].startswith(kind)]
            xs = [gi + (i - len(rs) / 2) * 0.5 / max(1, len(rs)) for i in range(len(rs))]
            first = gi == 0
            ax.scatter(xs, [r["ratio_prior"] for r in rs], marker="o", facecolors="none",
                       edgecolors="tab:red", label="prior (as detected)" if first else None)  # fmt: skip
            ax.scatter([x + 0.15 for x in xs], [r["ratio_calibrated"] for r in rs], marker="o",
                       color="tab:blue", label="after wave calibrate --quick" if first else None)  # fmt: skip
        ax.axhline(1, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(range(len(GROUPS)), [g.replace("-", "\n", 1) for g in GROUPS], fontsize=8)
        ax.set_title(f"{'prompt processing' if kind == 'pp' else 'token generation'}: predicted / measured")
    axes[0].legend(fontsize=8)
    fig.suptitle("llama-bench on the H100 host's Xeon (16 cores, AVX-512 VNNI/BF16 kernels)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
