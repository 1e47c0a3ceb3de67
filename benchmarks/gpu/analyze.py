"""Measured (H100) vs predicted (`wave size`) per load point: the points the H100 llama.cpp entry was
fitted on and the points held out, before (round 2: convoy model, no first-token or per-sequence
term) and after (round 3, shipped), GPU memory used vs predicted, transformers serve against the
shipped GPU default, and the gateway's overhead (direct vs `wave serve`).

    .venv/bin/python benchmarks/gpu/analyze.py            # reads benchmarks/results/gpu/runs

Writes benchmarks/results/gpu/{calibration.yaml, analysis.json, analysis.md, prediction_error.png,
arrival.png, gateway_overhead.png, prompt_cache.png}.
"""

from __future__ import annotations

import copy
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
from waveidp.sizing import Efficiency, efficiency_for
from waveidp.sizing._efficiency import _user

# No user calibration file may leak in: "shipped" must mean the repository's efficiency.yaml.
os.environ["WAVE_HOME"] = tempfile.mkdtemp(prefix="wave-gpu-analysis-")

ROOT = Path(__file__).resolve().parents[2]
RES = ROOT / "benchmarks/results/gpu"
RUNS = RES / "runs"
WAVE = str(ROOT / ".venv/bin/wave")
# Round 2 (shipped in ccd8e96): every run predicted as a burst, no first-token or per-sequence term.
ROUND2 = Efficiency(
    decode_bandwidth=0.629,
    decode_bandwidth_by_quant={"q4_k_m": 0.68},
    prefill_compute=0.0313,
    decode_compute=0.0064,
    step_overhead_s=0.0014,
    source="round 2 (ccd8e96)",
)
# What the 8B factors are fitted on: the two Llama-3.1-8B sweeps taken directly against llama-server.
FIT = ["llama8b-q4_k_m/direct", "llama8b-q8_0/direct"]
# (label, results dir, role). "fitted": the 8B factors come from these; "held-out": nothing was
# fitted on them; "small": the per-sequence host term comes from their burst c=1 and c=64 ITLs.
SETS = [
    ("8B q4_k_m burst 542", "llama8b-q4_k_m/direct", "fitted"),
    ("8B q8_0 burst 542", "llama8b-q8_0/direct", "fitted"),
    ("8B q4_k_m burst 542, repeat", "call1-llama8b-q4_k_m/direct", "held-out"),
    ("8B q8_0 burst 542", "llama8b-q8_0-heldout/burst512", "held-out"),
    ("8B q8_0 burst 158", "llama8b-q8_0-heldout/burst128", "held-out"),
    ("8B q8_0 burst 2078", "llama8b-q8_0-heldout/burst2048", "held-out"),
    ("8B q8_0 steady 542", "llama8b-q8_0-steady2/steady4", "held-out"),
    ("8B q8_0 steady 542", "llama8b-q8_0-steady2/steady8", "held-out"),
    ("8B q8_0 steady 542", "llama8b-q8_0-heldout/steady16", "held-out"),
    ("8B q8_0 steady 542", "llama8b-q8_0-steady2/steady32", "held-out"),
    ("8B q8_0 steady 542", "llama8b-q8_0-heldout/steady64", "held-out"),
    ("8B q4_k_m ramp 4 s", "llama8b-q4_k_m-steady/direct", "held-out"),
    ("8B q8_0 burst 158, fresh server", "llama8b-q8_0-recheck/burst128", "held-out"),
    ("8B q8_0 steady 158", "llama8b-q8_0-recheck/steady128", "held-out"),
    ("8B q8_0 steady 2078", "llama8b-q8_0-recheck/steady2048", "held-out"),
    ("8B q8_0 steady 2078", "llama8b-q8_0-recheck/steady2048x16", "held-out"),
    # round 4 (calls 9-10): q4_k_m, prompts of 1054 and ~3030 tokens, new concurrencies; each steady
    # point on a fresh server (call 9's steady points after another point stalled, see README)
    ("8B q4_k_m burst 1054 (r4)", "llama8b-q4_k_m-r4/burst1024", "held-out r4"),
    ("8B q4_k_m steady 1054 (r4)", "llama8b-q4_k_m-r4b-s8/steady1024x8", "held-out r4"),
    ("8B q4_k_m steady 1054 (r4)", "llama8b-q4_k_m-r4b-s24/steady1024x24", "held-out r4"),
    ("8B q4_k_m steady 1054 (r4)", "llama8b-q4_k_m-r4b-s48/steady1024x48", "held-out r4"),
    ("8B q4_k_m steady 3030 (r4)", "llama8b-q4_k_m-r4long/steady3000x8", "held-out r4"),
    ("8B q4_k_m steady 3030 (r4)", "llama8b-q4_k_m-r4b-l16/steady3000x16", "held-out r4"),
    ("SmolLM2-135M Q4_1 burst (r4)", "smollm2-135m-q4_1-r4/burst512", "small r4"),
    ("SmolLM2-135M Q4_1 steady (r4)", "smollm2-135m-q4_1-r4b/steady16", "small r4"),
    ("Gemma 3 270M Q4_K_M burst (r4)", "gemma-3-270m-q4_k_m-r4/burst512", "small r4"),
    ("Gemma 3 270M Q4_K_M steady (r4)", "gemma-3-270m-q4_k_m-r4b/steady32", "small r4"),
    # call 11: the same bursts with llama-server's host prompt cache on (default) and off
    ("8B q8_0 burst 542, cache on (r4)", "llama8b-q8_0-r4c-cacheon/burst512", "cache A/B"),
    ("8B q8_0 burst 542, --cache-ram 0 (r4)", "llama8b-q8_0-r4c-cacheoff/burst512", "cache A/B"),
    ("SmolLM2 burst, cache on (r4)", "smollm2-135m-q4_1-r4c-cacheon/burst512", "cache A/B"),
    ("SmolLM2 burst, --cache-ram 0 (r4)", "smollm2-135m-q4_1-r4c-cacheoff/burst512", "cache A/B"),
    # round 5 (call 12): q4_k_m, 768-token prompts, c = 4/12, cache on and --cache-ram 0, fresh servers
    ("8B q4_k_m burst 768, cache on (r5)", "llama8b-q4_k_m-r5-on4/burst768", "held-out r5"),
    ("8B q4_k_m burst 768, --cache-ram 0 (r5)", "llama8b-q4_k_m-r5-off4/burst768", "held-out r5"),
    ("8B q4_k_m burst 768, cache on (r5)", "llama8b-q4_k_m-r5-on12/burst768", "held-out r5"),
    ("8B q4_k_m burst 768, --cache-ram 0 (r5)", "llama8b-q4_k_m-r5-off12/burst768", "held-out r5"),
    ("8B q4_k_m steady 768, cache on (r5)", "llama8b-q4_k_m-r5-s12on/steady768x12", "held-out r5"),
    ("8B q4_k_m steady 768, --cache-ram 0 (r5)", "llama8b-q4_k_m-r5-s12off/steady768x12", "held-out r5"),
    ("SmolLM2 burst, cache on (r5)", "smollm2-135m-q4_1-r5-on24/burst512", "small r5"),
    ("SmolLM2 burst, --cache-ram 0 (r5)", "smollm2-135m-q4_1-r5-off24/burst512", "small r5"),
    # round 6 (calls 13-14): q8_0, cache on, fresh servers: 768-token bursts c=6/20 and 1024 c=16 on 64
    # slots (fewer requests than slots: no slot reused), c=20 on 20 slots (reused from round 2 on)
    ("8B q8_0 burst 768, cache on (r6)", "llama8b-q8_0-r6-on6/burst768", "held-out r6"),
    ("8B q8_0 burst 768, cache on (r6)", "llama8b-q8_0-r6-on20/burst768", "held-out r6"),
    ("8B q8_0 burst 1024, cache on (r6)", "llama8b-q8_0-r6-on16l/burst1024", "held-out r6"),
    ("8B q8_0 burst 768, -np 20, cache on (r6)", "llama8b-q8_0-r6-np20on/burst768", "held-out r6"),
    ("8B q8_0 burst 768, -np 20, --cache-ram 0 (r6)", "llama8b-q8_0-r6-np20off/burst768", "cache A/B"),
    ("SmolLM2-135M Q4_1 burst", "smollm2-135m-q4_1/burst512", "small"),
    ("SmolLM2-135M Q4_1 steady", "smollm2-135m-q4_1/steady64", "small"),
    ("Gemma 3 270M Q4_K_M burst", "gemma-3-270m-q4_k_m/burst512", "small"),
    ("Gemma 3 270M Q4_K_M steady", "gemma-3-270m-q4_k_m-steady/steady16", "small"),
    ("Gemma 3 270M Q4_K_M steady", "gemma-3-270m-q4_k_m-steady/steady64", "small"),
]
TRANSFORMERS = "transformers-serve/direct"
GATEWAY = ["llama8b-q4_k_m", "llama8b-q4_k_m-steady", "smollm2-q8_0", "smollm2-q8_0-rerun"]
KEYS = [("ttft_ms", "TTFT p50 ms"), ("itl_ms", "ITL p50 ms"), ("output_tokens_per_s", "output tok/s")]
ROLES = {
    "fitted": "tab:blue",
    "held-out": "tab:orange",
    "small": "tab:green",
    "held-out r4": "tab:red",
    "small r4": "tab:olive",
    "cache A/B": "tab:gray",
    "held-out r5": "tab:purple",
    "small r5": "tab:pink",
    "held-out r6": "tab:brown",
}
MD: list[str] = []


def out(line: str = "") -> None:
    print(line)
    MD.append(line)


def as_burst(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as round 2 saw it: no arrival pattern, every run predicted as a burst."""
    d = copy.deepcopy(doc)
    d["config"] = {**(d.get("config") or {}), "ramp_s": 0.0}
    for r in d["runs"]:
        r["load"] = "concurrency"
    return d


def run(cmd: list[str]) -> str:
    print("$ " + shlex.join(cmd).replace(str(ROOT) + "/", ""), file=sys.stderr)
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout


def calibrate() -> tuple[Any, str]:
    """`wave calibrate` from the shipped entry over the fitted points: does it stay where it is?"""
    cal = RES / "calibration.yaml"
    cmd = [WAVE, "calibrate", *[str(RUNS / r) for r in FIT], "--out", str(cal), "--json"]
    report = run(cmd)
    return _user(cal)["h100-sxm"]["llamacpp"], report


def err_stats(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    res = {}
    for key, _ in KEYS:
        errs = [abs(r[key]["error_pct"]) for r in rows if r[key]["error_pct"] is not None]
        ratio = [
            max(r[key]["predicted"] / r[key]["measured"], r[key]["measured"] / r[key]["predicted"])
            for r in rows
            if r[key]["measured"] and r[key]["predicted"]
        ]
        res[key] = {"median_abs_pct": statistics.median(errs), "worst_ratio": max(ratio), "points": len(errs)}
    return res


def load(rel: str) -> dict[str, Any]:
    path = RUNS / rel / "results.json"
    doc = json.loads(path.read_text())
    doc["_path"] = str(path.relative_to(ROOT))
    return doc


def memory(rel: str, slot_ctx: int) -> dict[str, Any]:
    doc = load(rel)
    dep = doc["deployment"]
    idle = (RUNS / rel).parent / "gpu-memory-idle.csv"  # slot_ctx: -c / -np of sweep.sh, points.sh
    idle_mib = float(idle.read_text().splitlines()[1].split(",")[1].split()[0])
    peak = max(r["telemetry"]["gpu_memory_used_bytes_max"] or 0 for r in doc["runs"])
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


def parity_axes(ax: Any, xs: list[float], title: str) -> None:
    """Log-log predicted vs measured: the diagonal, 2x either way dotted."""
    ax.plot(xs, xs, "k-", lw=0.8)
    ax.plot(xs, [x * 2 for x in xs], "k:", lw=0.6)
    ax.plot(xs, [x / 2 for x in xs], "k:", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"measured {title} (H100)")
    ax.set_ylabel(f"predicted {title}")


def cache_doc(rel: str) -> dict[str, Any]:
    """results.json with the server's prompt-cache setting (run dirs of --cache-ram 0 say "off")."""
    doc = load(rel)
    off = "cacheoff" in rel or "-off" in rel or "s12off" in rel or "np20off" in rel
    doc["deployment"] = {**doc["deployment"], "prompt_cache": not off}
    return doc


def round5(shipped: Efficiency) -> dict[str, Any]:
    """Round 3's shipped entry vs the round-5 candidate (prefill refitted with the cache off plus the
    prompt-cache save term, benchmarks/gpu/fit_prompt_cache.py) on the points of each group."""
    fit = json.loads((RES / "prompt_cache_fit.json").read_text())
    cand = shipped.model_copy(
        update={k: fit[k] for k in ("prefill_compute", "prompt_cache_save_bytes_per_s")}
    )
    r5 = [rel for _n, rel, role in SETS if role == "held-out r5"]
    groups = {
        "fitted r5 (call 11: q8_0 542-token bursts c=4/8/16, cache on + off)": [
            "llama8b-q8_0-r4c-cacheon/burst512",
            "llama8b-q8_0-r4c-cacheoff/burst512",
        ],
        "held-out r5, cache on (q4_k_m 768, c=4/12 burst, c=12 steady)": [
            r for r in r5 if "-on" in r or "s12on" in r
        ],
        "held-out r5, --cache-ram 0 (the same)": [r for r in r5 if "-off" in r or "s12off" in r],
        "held-out r5, all 8B": r5,
        "fitted r2-3 (8B, 542 burst c=1/4/16/64)": FIT,
        "held-out r3 (26 8B points)": [rel for _n, rel, role in SETS if role == "held-out"],
        "held-out r4 (7 8B points)": [rel for _n, rel, role in SETS if role == "held-out r4"],
        "held-out r3+r4+r5, all 8B": [
            rel for _n, rel, role in SETS if role in ("held-out", "held-out r4", "held-out r5")
        ],
        "SmolLM2 r5 (burst c=24, cache on + off)": [rel for _n, rel, role in SETS if role == "small r5"],
    }
    res: dict[str, Any] = {"candidate": cand.model_dump(), "groups": {}, "points": []}
    out("\n## Round 5: shipped (round 3) entry vs the prompt-cache candidate\n")
    out(f"candidate = shipped with prefill_compute {fit['prefill_compute']} (cache-off fit) and")
    out(f"prompt_cache_save_bytes_per_s {fit['prompt_cache_save_bytes_per_s']:.3g}; each run is predicted")
    out("with the server's cache setting. Median abs error (worst ratio), shipped -> candidate:\n")
    out("| points | n | TTFT | ITL | output tok/s |")
    out("|---|---|---|---|---|")
    for name, rels in groups.items():
        rs = [r for rel in rels for r in predict_runs(cache_doc(rel), shipped)]
        rc = [r for rel in rels for r in predict_runs(cache_doc(rel), cand)]
        es, ec = err_stats(rs), err_stats(rc)
        res["groups"][name] = {"shipped": es, "candidate": ec, "results": rels}
        cells = [
            f"{es[k]['median_abs_pct']:.0f}% ({es[k]['worst_ratio']:.1f}x) -> "
            f"{ec[k]['median_abs_pct']:.0f}% ({ec[k]['worst_ratio']:.1f}x)"
            for k, _ in KEYS
        ]
        out(f"| {name} | {len(rs)} | " + " | ".join(cells) + " |")
    out("\n| round-5 point | TTFT ms measured / shipped / candidate | ITL ms | output tok/s |")
    out("|---|---|---|---|")
    for name, rel, role in SETS:
        if role not in ("held-out r5", "small r5", "cache A/B"):
            continue
        for a, b in zip(
            predict_runs(cache_doc(rel), shipped), predict_runs(cache_doc(rel), cand), strict=True
        ):
            res["points"].append({"name": name, "results": rel, "shipped": a, "candidate": b})
            cells = [
                f"{a[k]['measured']:.4g} / {a[k]['predicted']:.4g} ({a[k]['error_pct']:+.0f}%) / "
                f"{b[k]['predicted']:.4g} ({b[k]['error_pct']:+.0f}%)"
                for k, _ in KEYS
            ]
            out(f"| {name} c={a['concurrency']} | " + " | ".join(cells) + " |")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for j, (key, title) in enumerate(KEYS):
        ax = axes[j]
        for p in res["points"]:
            off = not cache_doc(p["results"])["deployment"]["prompt_cache"]
            m = p["shipped"][key]["measured"]
            color = "tab:blue" if off else "tab:red"
            ax.scatter([m], [p["shipped"][key]["predicted"]], marker="x", color=color, s=26)
            ax.scatter([m], [p["candidate"][key]["predicted"]], marker="o", color=color, s=22)
        vals = [p[w][key][s] for p in res["points"] for w in ("shipped", "candidate")
                for s in ("measured", "predicted")]  # fmt: skip
        parity_axes(ax, [min(vals) / 1.5, max(vals) * 1.5], title)
        ax.set_title(f"{title}: x shipped, o candidate; red cache on, blue --cache-ram 0", fontsize=8)
    fig.tight_layout()
    fig.savefig(RES / "prompt_cache.png", dpi=90)
    return res


def main() -> None:
    shipped = efficiency_for("h100-sxm", "llamacpp")
    recal, cal_report = calibrate()
    analysis: dict[str, Any] = {
        "efficiency_round2": ROUND2.model_dump(),
        "efficiency_shipped": shipped.model_dump(),
        "efficiency_recalibrated": recal.model_dump(),
        "calibrate_report": json.loads(cal_report),
        "sets": [],
        "memory": {},
        "gateway": [],
    }
    by_role: dict[str, dict[str, list[dict[str, Any]]]] = {r: {"before": [], "after": []} for r in ROLES}
    out("# H100 llama.cpp: measured vs predicted, per point (`benchmarks/gpu/analyze.py`)\n")
    out("before = round 2 entry, every run predicted as a burst; after = shipped round 3 entry with the")
    out("arrival pattern results.json records (steady = --ramp and --point-warmup set). Cells: measured /")
    out("before / after (error after).\n")
    out("| set | role | arrival | c | prompt | TTFT ms | ITL ms | output tok/s |")
    out("|---|---|---|---|---|---|---|---|")
    for name, rel, role in SETS:
        doc = load(rel)
        rb, ra = predict_runs(as_burst(doc), ROUND2), predict_runs(doc, shipped)
        by_role[role]["before"] += rb
        by_role[role]["after"] += ra
        analysis["sets"].append(
            {"name": name, "role": role, "results": doc["_path"], "command": doc["command"], "before": rb,
             "after": ra}
        )  # fmt: skip
        for b, a in zip(rb, ra, strict=True):
            cells = [
                f"{a[k]['measured']:.4g} / {b[k]['predicted']:.4g} / {a[k]['predicted']:.4g} "
                f"({a[k]['error_pct']:+.0f}%)"
                for k, _ in KEYS
            ]
            out(
                f"| {name} | {role} | {a['arrival']} | {a['concurrency']} | {a['prompt_tokens']} | "
                + " | ".join(cells)
                + " |"
            )
    out("\n| points | n | TTFT median abs err (worst) before -> after | ITL | output tok/s |")
    out("|---|---|---|---|---|")
    analysis["summary"] = {}
    for role in ROLES:
        eb, ea = err_stats(by_role[role]["before"]), err_stats(by_role[role]["after"])
        analysis["summary"][role] = {"before": eb, "after": ea}
        cells = [
            f"{eb[k]['median_abs_pct']:.0f}% ({eb[k]['worst_ratio']:.1f}x) -> "
            f"**{ea[k]['median_abs_pct']:.0f}% ({ea[k]['worst_ratio']:.1f}x)**"
            for k, _ in KEYS
        ]
        out(f"| {role} | {eb['ttft_ms']['points']} | " + " | ".join(cells) + " |")

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for j, (key, title) in enumerate(KEYS):
        ax = axes[j]
        for role, color in ROLES.items():
            rb, ra = by_role[role]["before"], by_role[role]["after"]
            ax.scatter([r[key]["measured"] for r in rb], [r[key]["predicted"] for r in rb], marker="x",
                       color=color, alpha=0.35, s=18, label=f"{role}, before (round 2)")  # fmt: skip
            ax.scatter([r[key]["measured"] for r in ra], [r[key]["predicted"] for r in ra], marker="o",
                       color=color, s=22, label=f"{role}, after (shipped)")  # fmt: skip
        lo = min(min(r[key]["measured"], r[key]["predicted"]) for v in by_role.values() for r in v["after"])
        hi = max(max(r[key]["measured"], r[key]["predicted"]) for v in by_role.values() for r in v["after"])
        parity_axes(ax, [lo / 2, hi * 2], title)
        ax.set_title(f"{title}: predicted vs measured (dotted: 2x)", fontsize=9)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(RES / "prediction_error.png", dpi=90)

    # TTFT against concurrency, burst vs steady, 8B q8_0 542-token prompts
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    pts: dict[str, list[tuple[int, float, float]]] = {"burst": [], "steady": []}
    for _name, rel, _role in SETS:
        if "q8_0" not in rel or ("burst512" not in rel and "steady" not in rel and rel != FIT[1]):
            continue
        for a in predict_runs(load(rel), shipped):
            if a["prompt_tokens"] == 542:
                pts[a["arrival"]].append(
                    (a["concurrency"], a["ttft_ms"]["measured"], a["ttft_ms"]["predicted"])
                )
    for arrival, color in (("burst", "tab:red"), ("steady", "tab:blue")):
        p = sorted(pts[arrival])
        ax.plot([c for c, _, _ in p], [m for _, m, _ in p], "o", color=color, label=f"measured, {arrival}")
        ax.plot([c for c, _, _ in p], [q for _, _, q in p], "--", color=color, label=f"predicted, {arrival}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("concurrency (closed-loop clients)")
    ax.set_ylabel("TTFT p50 ms")
    ax.set_title("8B q8_0, 542-token prompts: clients starting together vs spread out", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RES / "arrival.png", dpi=90)

    analysis["round5"] = round5(shipped)

    out("\n## transformers serve (shipped GPU default for transformers, not calibrated)\n")
    t = predict_runs(load(TRANSFORMERS))
    analysis["transformers"] = t
    out("| c | TTFT ms measured / predicted | ITL ms | output tok/s |")
    out("|---|---|---|---|")
    for a in t:
        cells = [
            f"{a[k]['measured']:.4g} / {a[k]['predicted']:.4g} ({a[k]['error_pct']:+.0f}%)" for k, _ in KEYS
        ]
        out(f"| {a['concurrency']} | " + " | ".join(cells) + " |")

    out("\n## GPU memory\n")
    for rel, slot_ctx in (
        ("llama8b-q4_k_m/direct", 768),
        ("llama8b-q8_0/direct", 768),
        ("smollm2-135m-q4_1/burst512", 896),
        ("gemma-3-270m-q4_k_m/burst512", 896),
    ):
        analysis["memory"][rel] = m = memory(rel, slot_ctx)
        out(
            f"- {rel}: predicted {m['predicted_gb']:.2f} GB, measured idle {m['measured_idle_gb']:.2f} GB, "
            f"peak {m['measured_peak_gb']:.2f} GB ({m['error_pct']:+.1f}% vs peak)"
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
    out("\n## Gateway (calls 1-3)\n")
    out(
        "| run | c | TTFT direct -> gateway ms | ITL direct -> gateway ms | tok/s direct -> gateway "
        "| gateway errors |"
    )
    out("|---|---|---|---|---|---|")
    for r in analysis["gateway"]:
        if "ttft_direct" not in r:
            out(f"| {r['set']} | {r['c']} | – | – | – | {r['gateway_errors']} {r['errors_by_kind']} |")
            continue
        out(
            f"| {r['set']} | {r['c']} | {r['ttft_direct']:.0f} -> {r['ttft_gateway']:.0f} | "
            f"{r['itl_direct']:.1f} -> {r['itl_gateway']:.1f} | "
            f"{r['tps_direct']:.0f} -> {r['tps_gateway']:.0f} | "
            f"{r['gateway_errors']} {r['errors_by_kind'] or ''} |"
        )
    (RES / "analysis.json").write_text(json.dumps(analysis, indent=1, default=str))
    (RES / "analysis.md").write_text("\n".join(MD) + "\n")
    print(
        f"\nwrote {RES / 'analysis.json'}, analysis.md, prediction_error.png, arrival.png, "
        "gateway_overhead.png, calibration.yaml"
    )


if __name__ == "__main__":
    main()
