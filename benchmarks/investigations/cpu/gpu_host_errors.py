"""The CPU prior against the H100 machine's host CPU (out of sample: nothing was fitted there).

Reads what `device_cpu.sh` brought back (benchmarks/results/cpu/gpu_host/): the node `wave fleet
detect` described there (an Emerald Rapids Xeon in a VM: 16 cores, 2.1 GHz nominal, its probe's
bandwidth) and llama-bench's rows (the generated 1B in f16 at 1-16 threads, q4_0 at one thread).
The generated models there were made by make_random_gguf.py with the same shape as here, so their
catalog description comes from this machine's copies (build/models). Predicts every row with
`waveidp.sizing` for that detected CPU, prints the ratios, writes errors.json and a thread-scaling
plot beside the data.

    .venv/bin/python benchmarks/investigations/cpu/gpu_host_errors.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from waveidp import catalog, fleet
from waveidp.bench.llama_bench import BenchRow
from waveidp.bench.node_calibration import predict_tokens_per_s
from waveidp.bench.quick_fit import Measured
from waveidp.sizing import efficiency_of

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "benchmarks/results/cpu/gpu_host"
MODELS = {
    "llama-1b-f16.gguf": "wave-random-llama-1b-f16.gguf",
    "llama-1b-q4_0.gguf": "wave-random-llama-1b-q4_0.gguf",
}
QUANT = {"llama-1b-f16.gguf": "f16", "llama-1b-q4_0.gguf": "q4_0"}


def main() -> None:
    detected = json.loads((DATA / "detect.json").read_text())
    node = fleet.Node.model_validate(detected["node"])
    cpu = next(d for d in node.devices if d.id == "cpu")
    hw = fleet.device_hardware(cpu, node)
    rows: list[dict[str, Any]] = []
    for name, build in (("bench-sapphirerapids.jsonl", "sapphirerapids"), ("bench-zen4.jsonl", "zen4")):
        for line in (DATA / name).read_text().splitlines():
            r = json.loads(line)
            file = Path(r["model_filename"]).name
            local = ROOT / "build/models" / MODELS[file]
            spec = catalog.model(str(local))
            samples = tuple(float(x) for x in r["samples_ts"])
            bench = BenchRow(
                local,
                int(r["n_threads"]),
                int(r["n_prompt"]),
                int(r["n_gen"]),
                max(samples),
                float(r["avg_ts"]),
                samples,
                "",
            )
            flags = (
                hw.cpu_flags
                if build == "sapphirerapids"
                else tuple(f for f in hw.cpu_flags if not f.startswith("amx"))
            )
            h = hw.model_copy(update={"cpu_flags": flags})
            predicted = predict_tokens_per_s(
                h, Measured(bench, spec, QUANT[file]), efficiency_of(h, "llamacpp")
            )
            rows.append(
                {
                    "build": build,
                    "model": file,
                    "threads": bench.threads,
                    "test": bench.test,
                    "measured_tokens_per_s": bench.tokens_per_s,
                    "predicted_prior": predicted,
                    "ratio_prior": predicted / bench.tokens_per_s,
                }
            )
            print(
                f"{build:15s} {file:20s} t={bench.threads:2d} {bench.test:6s} "
                f"measured {bench.tokens_per_s:7.1f}  predicted {predicted:7.1f}  "
                f"ratio {predicted / bench.tokens_per_s:.2f}"
            )
    summary = {
        kind: {
            "n": len(rs),
            "median_error_prior": statistics.median(abs(r["ratio_prior"] - 1) for r in rs),
            "worst_ratio_prior": max((r["ratio_prior"] for r in rs), key=lambda v: max(v, 1 / v)),
        }
        for kind in ("pp", "tg")
        if (rs := [r for r in rows if r["test"].startswith(kind)])
    }
    print(json.dumps(summary, indent=1))
    doc = {
        "command": ".venv/bin/python benchmarks/investigations/cpu/gpu_host_errors.py",
        "device": hw.model_dump(mode="json"),
        "rows": rows,
        "summary": summary,
    }
    (DATA / "errors.json").write_text(json.dumps(doc, indent=1) + "\n")
    plot(rows, DATA / "thread_scaling.png")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for test, color in (("pp64", "tab:blue"), ("pp256", "tab:green"), ("tg32", "tab:red")):
        rs = sorted(
            (r for r in rows if r["test"] == test and r["model"].endswith("f16.gguf")),
            key=lambda r: r["threads"],
        )
        t = [r["threads"] for r in rs]
        ax.plot(t, [r["measured_tokens_per_s"] for r in rs], "o", color=color, label=f"{test} measured")
        ax.plot(
            t, [r["predicted_prior"] for r in rs], "-", color=color, lw=1, label=f"{test} predicted (prior)"
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("llama.cpp threads")
    ax.set_ylabel("tokens/s (log)")
    ax.set_title("1B f16 on the H100 host's Xeon: thread scaling, prior vs llama-bench")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
