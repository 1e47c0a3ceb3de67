"""Does `wave emulate` serve what `wave size` predicts? Measured through HTTP, per engine.

`wave emulate` (with the sizing model's timing) and `wave bench --predict` run one model of the
engine's scheduler: `waveidp.sizing.ServerLoop` for llama-server, `PagedLoop` for vLLM. For each
case, repeat and concurrency a fresh `wave emulate` (real time) is measured by the real
`wave bench -c C --predict`; the prediction is the one `--predict` writes into results.json (the
replay of the recorded run). Cases:

- llamacpp-gpu: Llama-3.1-8B q4_k_m on an RTX 5070 Ti, `--parallel 8`, 512-token prompts, 64 output
  tokens, c = 1, 4, 8 (the issue's case);
- llamacpp-cpu: SmolLM2-135M q4_1 on the Zen 4/5 AVX-512 class (`ryzen-9-9900x`), `--parallel 2`,
  128-token prompts, 32 output tokens, c = 1, 2: llama-server's 2 ms launch window on CPUs decides
  whether two clients share a prompt batch;
- vllm-paged: Llama-3.1-8B fp8 on an RTX 5070 Ti under vLLM, 2048-token prompts, 64 output tokens,
  c = 16 and 32: the paged KV holds 23 such requests (2048-token budget a step), so at 32
  clients 9 wait for blocks.

A fresh server per point: which slots earlier points used decides which slots a burst gets, and
non-consecutive slots cost llama-server an extra pass over the weights per decode step.
`--tree NAME=DIR` runs every point again with another checkout's `src/` (e.g. `git archive main`),
emulator, client and prediction alike, interleaved with this tree's ("new") so all see the same
load. Printed and saved: TTFT p50, ITL p50 and output tok/s, measured and predicted, per tree,
case, concurrency and repeat, the load average before each repeat (the emulator and the client
share this machine's cores, so client and scheduling jitter show up as error), and a plot of
predicted / measured per point.

    .venv/bin/python benchmarks/emulate_vs_size.py                          # this tree, 2 repeats
    git archive main | tar -x -C /tmp/main && \\
      .venv/bin/python benchmarks/emulate_vs_size.py --tree old=/tmp/main/src  # old vs new
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from waveidp.loopback import free_port

REPO = Path(__file__).resolve().parent.parent
KEYS = ("ttft_ms", "itl_ms", "output_tokens_per_s")
CASES: dict[str, dict[str, Any]] = {
    "llamacpp-gpu": {
        "model": "llama-3.1-8b", "quant": "q4_k_m", "device": "rtx-5070-ti", "engine": "llamacpp",
        "parallel": 8, "prompt": 512, "output": 64, "concurrency": (1, 4, 8),
    },
    "llamacpp-cpu": {
        "model": "smollm2-135m", "quant": "q4_1", "device": "ryzen-9-9900x", "engine": "llamacpp",
        "parallel": 2, "prompt": 128, "output": 32, "concurrency": (1, 2),
    },
    "vllm-paged": {
        "model": "llama-3.1-8b", "quant": "fp8", "device": "rtx-5070-ti", "engine": "vllm",
        "parallel": None, "prompt": 2048, "output": 64, "concurrency": (16, 32),
    },
}  # fmt: skip


def one_run(
    work: Path, src: Path, tag: str, case: dict[str, Any], conc: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """One fresh `wave emulate` measured by `wave bench -c conc --predict`, both from `src`."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    wave = [sys.executable, "-m", "waveidp"]
    port = free_port()
    slots = ["--parallel", str(case["parallel"])] if case["parallel"] else []
    emulate = [*wave, "emulate", "--model", case["model"], "--quant", case["quant"],
               "--device", case["device"], "--engine", case["engine"], *slots,
               "--served-name", "m", "--port", str(port)]  # fmt: skip
    out = work / tag
    bench = [*wave, "bench", "--url", f"http://127.0.0.1:{port}", "--model", "m", "-c", str(conc),
             "-n", str(3 * conc), "--duration", "120", "--input-tokens", str(case["prompt"]),
             "--output-tokens", str(case["output"]), "--predict", "--model-id", case["model"],
             "--quant", case["quant"], "--device", case["device"], "--engine", case["engine"], *slots,
             "--no-plots", "--out", str(out)]  # fmt: skip
    with (work / f"{tag}.log").open("wb") as log:
        proc = subprocess.Popen(emulate, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            import httpx

            for _ in range(300):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            subprocess.run(bench, check=True, capture_output=True, text=True, timeout=300, env=env)
        finally:
            proc.terminate()
            proc.wait(10)
    doc = json.loads((out / "results.json").read_text())
    return doc["predictions"], [shlex.join(emulate[2:]), shlex.join(bench[2:])]


def _plot(rows: list[dict[str, Any]], trees: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = list(CASES)
    points = sorted({(r["case"], r["concurrency"]) for r in rows}, key=lambda p: (order.index(p[0]), p[1]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=False)
    width = 0.8 / len(trees)
    for ax, key in zip(axes, ("ttft_ms", "itl_ms"), strict=True):
        for j, tree in enumerate(trees):
            ratios = [
                statistics.median(
                    r[key]["predicted"] / r[key]["measured"]
                    for r in rows
                    if (r["case"], r["concurrency"]) == p and r["tree"] == tree and r[key]["measured"]
                )
                for p in points
            ]
            ax.bar([i + j * width for i in range(len(points))], ratios, width, label=tree)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xticks([i + width * (len(trees) - 1) / 2 for i in range(len(points))])
        ax.set_xticklabels([f"{c.replace('-', chr(10))}\nc={n}" for c, n in points], fontsize=8)
        ax.set_title(f"{key.removesuffix('_ms').upper()} p50: predicted / measured (median of repeats)")
        ax.legend()
    fig.suptitle("wave bench --predict against wave emulate, through HTTP")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    ap.add_argument(
        "--tree", action="append", default=[], help="NAME=DIR: another checkout's src/ to run side by side"
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/emulate_vs_size.json")
    ap.add_argument("--replot", action="store_true", help="only redraw the plot of --out's results")
    args = ap.parse_args()
    if args.replot:
        doc = json.loads(args.out.read_text())
        _plot(doc["rows"], list(doc["trees"]), args.out.with_suffix(".png"))
        return
    os.environ["WAVE_HOME"] = tempfile.mkdtemp(prefix="wave-emulate-vs-size-")
    work = Path(tempfile.mkdtemp(prefix="emulate-vs-size-"))
    others = (t.partition("=") for t in args.tree)
    trees = {"new": REPO / "src"} | {name: Path(src).resolve() for name, _, src in others}
    rows: list[dict[str, Any]] = []
    commands: dict[str, list[str]] = {}
    for repeat in range(args.repeats):
        load = os.getloadavg()[0]
        for name in args.cases.split(","):
            case = CASES[name]
            for conc in case["concurrency"]:
                for tree, src in trees.items():
                    preds, cmds = one_run(work, src, f"{tree}-{name}-r{repeat}-c{conc}", case, conc)
                    commands.setdefault(f"{name} c={conc}", cmds)
                    for r in preds:
                        row = {"tree": tree, "case": name, "repeat": repeat, "load_average": round(load, 2)}
                        row |= {"concurrency": r["concurrency"]} | {k: r[k] for k in KEYS}
                        rows.append(row)
                        print(f"{tree} {name} repeat {repeat} (load {load:.1f}) c={r['concurrency']}: "
                              + ", ".join(f"{k} {r[k]['measured']:.1f} measured / {r[k]['predicted']:.1f} "
                                          f"predicted ({r[k]['error_pct']:+.1f}%)" for k in KEYS),
                              flush=True)  # fmt: skip
    summary = {
        tree: {
            f"{name} c={c}": {
                k: round(
                    statistics.median(
                        abs(r[k]["error_pct"])
                        for r in rows
                        if (r["tree"], r["case"], r["concurrency"]) == (tree, name, c)
                    ),
                    2,
                )
                for k in KEYS
            }
            for name in args.cases.split(",")
            for c in CASES[name]["concurrency"]
        }
        for tree in trees
    }
    print("median |error| % over the repeats, per tree and point:", json.dumps(summary, indent=1))
    doc = {
        "command": "python benchmarks/emulate_vs_size.py " + " ".join(sys.argv[1:]),
        "trees": {tree: str(src) for tree, src in trees.items()},
        "runs": commands,
        "median_abs_error_pct": summary,
        "rows": rows,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    _plot(rows, list(trees), args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
