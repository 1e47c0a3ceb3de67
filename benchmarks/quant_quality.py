"""What each llama.cpp quantization costs in quality and gains in size and speed, measured here.

For SmolLM2-135M-Instruct (packaged as Q4_1) and Gemma 3 270M (packaged as Q4_K_M), through Wave's
own model store (`waveidp.models`, the code behind `wave models import / quantize / quality`):

1. import the packaged GGUF into a scratch store;
2. make an F16 of it with `llama-quantize --allow-requantize ... F16`. No unquantized original
   ships here, so this F16 holds exactly the packaged model's (dequantized) weights: the KLD
   below is measured against the packaged model, i.e. it is what quantizing *that* model again
   costs, on top of the error its packager's quantization already made. Against the original
   BF16 weights every figure would be larger, the packaged type's own row most of all;
3. quantize the F16 to each type (one thread);
4. `llama-perplexity --kl-divergence` of each type against the F16's logits on the Jargon File
   excerpt shipped with Wave (CONTEXT tokens per chunk, CHUNKS chunks, the second half of each
   scored): KLD mean / median / p95 / p99 / max, top-1 agreement, perplexity;
5. `llama-bench` (one thread, `-p 128 -n 32`, 2 repetitions) prompt and generation tok/s.

Prints the table, saves JSON (with the exact command) and a PNG under benchmarks/results/.

    flock /tmp/wave-bench.lock nice -n 10 .venv/bin/python benchmarks/quant_quality.py   # ~20-30 min
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from rich.console import Console
from rich.table import Table

from waveidp import models
from waveidp.catalog.store_manifest import read_spec
from waveidp.engines.local_files import embedded_model_path, llama_tool
from waveidp.models import gemma_model_path

RESULTS = Path(__file__).parent / "results"
TYPES = ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K"]
console = Console(stderr=True)


def bench_speed(path: Path, threads: int) -> dict[str, float]:
    cmd = [str(llama_tool("llama-bench")), "-m", str(path), "-t", str(threads)]
    cmd += ["-p", "128", "-n", "32", "-r", "2", "-o", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = json.loads(out)
    pp = next(r for r in rows if r["n_prompt"] > 0 and r["n_gen"] == 0)
    tg = next(r for r in rows if r["n_gen"] > 0 and r["n_prompt"] == 0)
    return {"pp_tok_s": round(pp["avg_ts"], 1), "tg_tok_s": round(tg["avg_ts"], 1)}


def one_model(
    label: str, packaged: Path, args: argparse.Namespace, store: models.ModelStore
) -> dict[str, Any]:
    console.rule(label)
    original = models.import_path(store, packaged, name=f"{label}-packaged")
    f16 = models.quantize(store, original.name, "F16", name=f"{label}-f16", threads=args.threads)
    variants = [original]
    for qtype in args.types:
        console.print(f"quantize {label} -> {qtype}")
        variants.append(
            models.quantize(store, f16.name, qtype, name=f"{label}-{qtype.lower()}", threads=args.threads)
        )
    settings = models.Settings(context=args.context, chunks=args.chunks, threads=args.threads)
    rows = []
    t0 = time.monotonic()
    with models.base_logits(store, f16, settings) as logits:
        base_s = time.monotonic() - t0
        for v in [f16, *variants]:
            console.print(f"quality {v.name}")
            q = models.measure(v, f16, logits, settings)
            speed = bench_speed(v.weights_path, args.threads)
            size = v.weights_path.stat().st_size
            rows.append(
                {
                    "type": v.manifest.quant,
                    "model": v.name,
                    "packaged": v is original,
                    "bytes": size,
                    "bits_per_weight": round(size * 8 / v.manifest.params, 3),
                    **{
                        k: getattr(q, k)
                        for k in (
                            "kld_mean",
                            "kld_median",
                            "kld_p95",
                            "kld_p99",
                            "kld_max",
                            "top1_agreement",
                            "delta_p_rms",
                            "ppl",
                            "ppl_base",
                        )
                    },
                    "tokens": q.tokens,
                    "chunks": q.chunks,
                    "quality_seconds": q.seconds,
                    **speed,
                }
            )
    return {
        "model": label,
        "packaged_file": packaged.name,
        "packaged_type": original.manifest.quant,
        "params": f16.manifest.params,
        "vocabulary": read_spec(f16.folder, f16.manifest.weights).vocab_size,
        "base_logits_seconds": round(base_s, 1),
        "f16_command": f16.manifest.source.command,
        "rows": rows,
    }


def print_table(result: dict[str, Any]) -> None:
    t = Table(
        title=f"{result['model']} ({result['params'] / 1e6:.0f}M, packaged {result['packaged_type']}): "
        f"KLD vs its F16, {result['rows'][0]['tokens']:,} tokens",
        title_justify="left",
    )
    for col in (
        "type",
        "MB",
        "bpw",
        "KLD mean",
        "KLD p95",
        "KLD p99",
        "top-1",
        "PPL",
        "pp tok/s",
        "tg tok/s",
    ):
        t.add_column(col, justify="left" if col == "type" else "right")
    for r in result["rows"]:
        t.add_row(
            r["type"] + (" (packaged)" if r["packaged"] else ""),
            f"{r['bytes'] / 1e6:.1f}",
            f"{r['bits_per_weight']:.2f}",
            f"{r['kld_mean']:.5f}",
            f"{r['kld_p95']:.4f}",
            f"{r['kld_p99']:.4f}",
            f"{r['top1_agreement']:.1%}",
            f"{r['ppl']:.3f}",
            f"{r['pp_tok_s']:.0f}",
            f"{r['tg_tok_s']:.1f}",
        )
    Console(width=140).print(t)


def plot(results: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for res, marker in zip(results, "os", strict=False):
        rows = [r for r in res["rows"] if r["type"] != "f16"]
        bpw = [r["bits_per_weight"] for r in rows]
        axes[0].scatter(bpw, [r["kld_p95"] for r in rows], marker=marker, label=res["model"])
        axes[1].scatter(bpw, [r["tg_tok_s"] for r in rows], marker=marker, label=res["model"])
        for r in rows:
            axes[0].annotate(r["type"], (r["bits_per_weight"], r["kld_p95"]), fontsize=7)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("bits per weight (file size x 8 / parameters)")
    axes[0].set_ylabel("KLD p95 vs the model's F16")
    axes[1].set_xlabel("bits per weight")
    axes[1].set_ylabel("generation tok/s (llama-bench, 1 thread)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("llama.cpp quantization types: quality cost vs size and speed (this machine)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--types", default=",".join(TYPES), help="llama-quantize types")
    p.add_argument("--context", type=int, default=512)
    p.add_argument("--chunks", type=int, default=12)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--models", default="smollm2,gemma", help="smollm2,gemma")
    p.add_argument("--out", type=Path, default=RESULTS / "quant_quality.json")
    args = p.parse_args()
    args.types = models.parse_types(args.types)
    packaged = {"smollm2": ("smollm2-135m", embedded_model_path), "gemma": ("gemma-3-270m", gemma_model_path)}
    results: list[dict[str, Any]] = []
    doc = {
        "command": shlex.join(["python", "benchmarks/quant_quality.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": platform.processor() or platform.machine(), "threads_used": args.threads},
        "method": __doc__,
        "settings": {"context": args.context, "chunks": args.chunks, "text": "jargon"},
        "results": results,
    }
    with TemporaryDirectory(prefix="wave-quant-quality-") as tmp:
        store = models.ModelStore(tmp)
        for key in args.models.split(","):
            label, path = packaged[key]
            results.append(one_model(label, path(), args, store))
            print_table(results[-1])
            args.out.write_text(json.dumps(doc, indent=2) + "\n")  # after each model: a cut run keeps it
            plot(results, args.out.with_suffix(".png"))
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
