"""Measured (H100, llama.cpp) vs predicted (`wave size`) per load point, before and after
`wave calibrate`, GPU memory used vs predicted, and the gateway's overhead (direct vs `wave serve`).

    .venv/bin/python benchmarks/gpu/analyze.py            # reads benchmarks/results/gpu/runs

Writes benchmarks/results/gpu/{calibration.yaml, analysis.json, prediction_error.png,
gateway_overhead.png} and prints the Markdown tables that README.md quotes.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from waveidp.bench.predict import predict_runs
from waveidp.sizing import efficiency_for
from waveidp.sizing._efficiency import _shipped, _user

# No user calibration file may leak in: "shipped" must mean the repository's efficiency.yaml.
os.environ["WAVE_HOME"] = tempfile.mkdtemp(prefix="wave-gpu-analysis-")

ROOT = Path(__file__).resolve().parents[2]
RES = ROOT / "benchmarks/results/gpu"
RUNS = RES / "runs"
WAVE = str(ROOT / ".venv/bin/wave")
# What the calibration is fitted on: the two Llama-3.1-8B sweeps taken directly against llama-server.
FIT = ["llama8b-q4_k_m/direct", "llama8b-q8_0/direct"]
# Everything compared (label, results dir).
SETS = [
    ("8B q4_k_m", "llama8b-q4_k_m/direct"),
    ("8B q8_0", "llama8b-q8_0/direct"),
    ("8B q4_k_m repeat (call 1)", "call1-llama8b-q4_k_m/direct"),
    ("8B q4_k_m steady (ramp, warm-up)", "llama8b-q4_k_m-steady/direct"),
    ("SmolLM2-135M q8_0", "smollm2-q8_0/direct"),
]
GATEWAY = ["llama8b-q4_k_m", "llama8b-q4_k_m-steady", "smollm2-q8_0", "smollm2-q8_0-rerun"]
KEYS = [("ttft_ms", "TTFT p50 ms"), ("itl_ms", "ITL p50 ms"), ("output_tokens_per_s", "output tok/s")]


def load(rel: str) -> dict[str, Any]:
    path = RUNS / rel / "results.json"
    doc = json.loads(path.read_text())
    doc["_path"] = str(path.relative_to(ROOT))
    return doc


def run(cmd: list[str]) -> str:
    print("$ " + shlex.join(cmd).replace(str(ROOT) + "/", ""), file=sys.stderr)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout


def calibrate() -> tuple[Any, Any, Any, str]:
    """(GPU kind default, `wave calibrate`'s fit, what efficiency.yaml ships for h100-sxm, report)."""
    out = RES / "calibration.yaml"
    cmd = [WAVE, "calibrate", *[str(RUNS / r) for r in FIT], "--out", str(out), "--json"]
    report = run(cmd)
    fitted = _user(out)["h100-sxm"]["llamacpp"]
    return _shipped()[0]["gpu"]["llamacpp"], fitted, efficiency_for("h100-sxm", "llamacpp"), report


def err_stats(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out = {}
    for key, _ in KEYS:
        errs = [abs(r[key]["error_pct"]) for r in rows if r[key]["error_pct"] is not None]
        ratio = [
            max(r[key]["predicted"] / r[key]["measured"], r[key]["measured"] / r[key]["predicted"])
            for r in rows
            if r[key]["measured"] and r[key]["predicted"]
        ]
        out[key] = {"median_abs_pct": statistics.median(errs), "worst_ratio": max(ratio)}
    return out


def memory(rel: str) -> dict[str, float]:
    doc = load(rel)
    dep = doc["deployment"]
    idle = (RUNS / rel).parent / "gpu-memory-idle.csv"
    idle_mib = float(idle.read_text().splitlines()[1].split(",")[1].split()[0])
    peak = max(r["telemetry"]["gpu_memory_used_bytes_max"] or 0 for r in doc["runs"])
    slot_ctx = 768  # sweep.sh starts llama-server with -c = parallel x (IN + OUTTOK + 128)
    cmd = [
        WAVE,
        "size",
        "-m",
        dep["model"],
        "-q",
        dep["quant"],
        "-d",
        dep["devices"][0],
        "-e",
        "llamacpp",
        "-c",
        str(slot_ctx),
        "--concurrency",
        str(dep.get("parallel", 64)),
        "--json",
    ]
    pred = json.loads(run(cmd))["memory"]["gpu_bytes"]
    return {
        "predicted_gb": pred / 1e9,
        "measured_idle_gb": idle_mib * 2**20 / 1e9,
        "measured_peak_gb": peak / 1e9,
        "error_pct": (pred - peak) / peak * 100,
        "command": shlex.join(cmd).replace(str(ROOT) + "/", ""),
    }


def gateway_rows(label: str) -> list[dict[str, Any]]:
    d, g = load(f"{label}/direct"), load(f"{label}/gateway")
    by_c = {r["concurrency"]: r["summary"] for r in g["runs"]}
    rows = []
    for r in d["runs"]:
        sd, sg = r["summary"], by_c.get(r["concurrency"])
        if not sd["completed"] or not sg or not sg["completed"]:
            rows.append(
                {
                    "set": label,
                    "c": r["concurrency"],
                    "gateway_errors": sg["errors"] if sg else None,
                    "errors_by_kind": sg["errors_by_kind"] if sg else None,
                    "note": "no comparison",
                }
            )
            continue
        rows.append(
            {
                "set": label,
                "c": r["concurrency"],
                "ttft_direct": sd["ttft_ms"]["p50"],
                "ttft_gateway": sg["ttft_ms"]["p50"],
                "itl_direct": sd["itl_ms"]["p50"],
                "itl_gateway": sg["itl_ms"]["p50"],
                "tps_direct": sd["output_tokens_per_s"],
                "tps_gateway": sg["output_tokens_per_s"],
                "completed_direct": sd["completed"],
                "completed_gateway": sg["completed"],
                "gateway_errors": sg["errors"],
                "errors_by_kind": sg["errors_by_kind"],
            }
        )
    return rows


def main() -> None:
    before, fitted, after, cal_report = calibrate()
    analysis: dict[str, Any] = {
        "efficiency_before": before.model_dump(),
        "efficiency_fitted": fitted.model_dump(),
        "efficiency_shipped": after.model_dump(),
        "calibrate_report": json.loads(cal_report),
        "sets": {},
        "memory": {},
        "gateway": [],
    }
    fig, axes = plt.subplots(len(SETS), 3, figsize=(14, 3.2 * len(SETS)))
    fit_rows: dict[str, list[dict[str, Any]]] = {"before": [], "fitted": [], "after": []}
    for i, (name, rel) in enumerate(SETS):
        doc = load(rel)
        rb, rf, ra = predict_runs(doc, before), predict_runs(doc, fitted), predict_runs(doc, after)
        if rel in FIT:
            fit_rows["before"] += rb
            fit_rows["fitted"] += rf
            fit_rows["after"] += ra
        analysis["sets"][name] = {
            "results": doc["_path"],
            "command": doc["command"],
            "before": rb,
            "fitted": rf,
            "after": ra,
            "error_before": err_stats(rb),
            "error_fitted": err_stats(rf),
            "error_after": err_stats(ra),
        }
        print(f"\n#### {name} (`{rel}`)\n")
        print(
            "| c | "
            + " | ".join(f"{t}: measured / before / fit / shipped (err shipped)" for _, t in KEYS)
            + " |"
        )
        print("|---|---|---|---|")
        for b, f, a in zip(rb, rf, ra, strict=True):
            cells = [
                f"{b[k]['measured']:.4g} / {b[k]['predicted']:.4g} / {f[k]['predicted']:.4g} / "
                f"{a[k]['predicted']:.4g} ({a[k]['error_pct']:+.0f}%)"
                for k, _ in KEYS
            ]
            print(f"| {b['concurrency']} | " + " | ".join(cells) + " |")
        for j, (key, title) in enumerate(KEYS):
            ax = axes[i][j]
            cs = [r["concurrency"] for r in rb]
            ax.plot(cs, [r[key]["measured"] for r in rb], "o-k", label="measured (H100)")
            ax.plot(
                cs,
                [r[key]["predicted"] for r in rb],
                "s--",
                color="tab:red",
                label="GPU defaults (before calibration)",
            )
            ax.plot(
                cs, [r[key]["predicted"] for r in rf], "v:", color="tab:green", label="wave calibrate fit"
            )
            ax.plot(
                cs, [r[key]["predicted"] for r in ra], "^--", color="tab:blue", label="shipped H100 entry"
            )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{name}: {title}", fontsize=9)
            ax.set_xlabel("concurrency")
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RES / "prediction_error.png", dpi=90)
    analysis["fit_set_error_before"] = err_stats(fit_rows["before"])
    analysis["fit_set_error_fitted"] = err_stats(fit_rows["fitted"])
    analysis["fit_set_error_after"] = err_stats(fit_rows["after"])
    print(
        "\n| 8B q4_k_m + q8_0, 8 points | TTFT median abs % (worst x) | ITL | output tok/s |\n"
        "|---|---|---|---|"
    )
    for label, key in (
        ("GPU default", "before"),
        ("wave calibrate fit", "fitted"),
        ("shipped H100", "after"),
    ):
        e = analysis[f"fit_set_error_{key}"]
        print(
            f"| {label} | "
            + " | ".join(f"{e[k]['median_abs_pct']:.0f}% ({e[k]['worst_ratio']:.1f}x)" for k, _ in KEYS)
            + " |"
        )

    for rel in ["llama8b-q4_k_m/direct", "llama8b-q8_0/direct", "smollm2-q8_0/direct"]:
        analysis["memory"][rel] = memory(rel)
        m = analysis["memory"][rel]
        print(
            f"memory {rel}: predicted {m['predicted_gb']:.2f} GB, "
            f"measured idle {m['measured_idle_gb']:.2f} GB, "
            f"peak {m['measured_peak_gb']:.2f} GB ({m['error_pct']:+.1f}%)"
        )

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for label in GATEWAY:
        rows = gateway_rows(label)
        analysis["gateway"] += rows
        ok = [r for r in rows if "ttft_direct" in r]
        for j, (a, b, title) in enumerate(
            [
                ("ttft_direct", "ttft_gateway", "TTFT p50 ms (gateway - direct)"),
                ("itl_direct", "itl_gateway", "ITL p50 ms (gateway - direct)"),
                ("tps_direct", "tps_gateway", "tok/s gateway / direct"),
            ]
        ):
            ys = [(r[b] / r[a]) if j == 2 else (r[b] - r[a]) for r in ok]
            axes[j].plot([r["c"] for r in ok], ys, "o-", label=label)
            axes[j].set_xscale("log", base=2)
            axes[j].set_title(title, fontsize=9)
            axes[j].set_xlabel("concurrency")
            axes[j].axhline(1.0 if j == 2 else 0.0, color="grey", lw=0.5)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RES / "gateway_overhead.png", dpi=90)
    print(
        "\n| run | c | TTFT direct -> gateway ms | ITL direct -> gateway ms | tok/s direct -> gateway | "
        "gateway errors |"
    )
    print("|---|---|---|---|---|---|")
    for r in analysis["gateway"]:
        if "ttft_direct" not in r:
            print(f"| {r['set']} | {r['c']} | – | – | – | {r['gateway_errors']} {r['errors_by_kind']} |")
            continue
        print(
            f"| {r['set']} | {r['c']} | {r['ttft_direct']:.0f} -> {r['ttft_gateway']:.0f} | "
            f"{r['itl_direct']:.1f} -> {r['itl_gateway']:.1f} | "
            f"{r['tps_direct']:.0f} -> {r['tps_gateway']:.0f} | "
            f"{r['gateway_errors']} {r['errors_by_kind'] or ''} |"
        )
    (RES / "analysis.json").write_text(json.dumps(analysis, indent=1, default=str))
    print(f"\nwrote {RES / 'analysis.json'}, prediction_error.png, gateway_overhead.png, calibration.yaml")


if __name__ == "__main__":
    main()
