"""Does llama-server's host prompt cache cost the embedded CPU engine what it costs on the H100?

On the H100 (benchmarks/results/gpu/README.md) the default cache (`--cache-ram 8192`)
stalls llama-server's host thread 280-390 ms per group of finishing requests and is most of a burst's
TTFT. Here: the embedded model (SmolLM2-135M, `wave up`'s engine: 1 thread, 4 slots) with the cache on
(the default) and off (`--cache-ram 0`), alternated, a fresh server per run, the same `wave bench`
bursts (c = 1 and 4, 256-token prompts, 32 output tokens). Prints the table, saves JSON with the
exact command under benchmarks/results/.

    .venv/bin/python benchmarks/investigations/prompt_cache_cpu.py          # ~2 minutes on 2 shared cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from waveidp.bench.report import BenchReport
from waveidp.engines.llamacpp import LlamaServerSpec
from waveidp.engines.local_files import embedded_model_path, llama_tool
from waveidp.loopback import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared llama-server runner
from local_llama import llama_server

ROOT = Path(__file__).resolve().parents[2]
WAVE = Path(sys.executable).with_name("wave")
ALIAS = "smol"
MODES = {"cache on (default)": [], "--cache-ram 0": ["--cache-ram", "0"]}


def one_run(extra: list[str], work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """A fresh llama-server with `extra` options, one `wave bench` sweep; its per-point summaries."""
    spec = LlamaServerSpec(
        binary=llama_tool("llama-server"), model=embedded_model_path(), port=free_port(), alias=ALIAS,
        threads=1, parallel=4, context=8192, embeddings=False,
    )  # fmt: skip
    with llama_server(spec, extra) as (url, server):
        bench = [
            str(WAVE), "bench", "--url", url, "-m", ALIAS, "-c", args.concurrency,
            "-n", str(args.requests), "--duration", "60", "--input-tokens", "256", "--output-tokens", "32",
            "--out", str(work), "--no-plots",
        ]  # fmt: skip
        subprocess.run(bench, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    return [
        {
            "concurrency": r.concurrency,
            "ttft_p50_ms": r.summary.ttft_ms.p50,
            "itl_p50_ms": r.summary.itl_ms.p50,
            "output_tokens_per_s": r.summary.output_tokens_per_s,
            "server": server,
        }
        for r in BenchReport.load(work).runs
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="on/off pairs, alternated")
    ap.add_argument("--concurrency", default="1,4")
    ap.add_argument("--requests", type=int, default=12, help="requests per load point")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/prompt_cache_cpu.json")
    args = ap.parse_args()
    runs: list[dict[str, Any]] = []
    with Progress() as progress, tempfile.TemporaryDirectory() as tmp:
        task = progress.add_task("llama-server runs", total=args.rounds * len(MODES))
        for rnd in range(args.rounds):
            for mode, extra in MODES.items():
                for point in one_run(extra, Path(tmp) / f"{rnd}-{len(extra)}", args):
                    runs.append({"round": rnd + 1, "mode": mode, **point})
                progress.advance(task)
    table = Table(title="SmolLM2-135M on llama-server (1 thread, 4 slots): prompt cache on vs off")
    for col in ("round", "mode", "c", "TTFT p50 ms", "ITL p50 ms", "output tok/s"):
        table.add_column(col)
    for r in runs:
        table.add_row(str(r["round"]), r["mode"], str(r["concurrency"]), f"{r['ttft_p50_ms']:.0f}",
                      f"{r['itl_p50_ms']:.2f}", f"{r['output_tokens_per_s']:.1f}")  # fmt: skip
    Console().print(table)
    ratios = {}
    for c in sorted({r["concurrency"] for r in runs}):
        for key in ("ttft_p50_ms", "output_tokens_per_s"):
            on = [r[key] for r in runs if r["concurrency"] == c and r["mode"] == "cache on (default)"]
            off = [r[key] for r in runs if r["concurrency"] == c and r["mode"] == "--cache-ram 0"]
            ratios[f"c{c}_{key}_on_over_off"] = round(sum(on) / sum(off), 3)
    print(json.dumps(ratios, indent=1))
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "method": __doc__,
        "runs": runs,
        "ratios_on_over_off": ratios,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
