"""Fit the CPU kernel table (src/waveidp/sizing/data/cpu_kernels.yaml) to llama-bench sweeps.

Input: sweeps of `benchmarks/sizing_cpu.py --no-calibrate` on this machine (an AVX-512 VNNI/BF16
Zen 4 EPYC) with llama.cpp built for three instruction-set levels: the native build (tier
avx512_vnni_bf16), `build_isa_variants.sh`'s skylakex (avx512: AVX-512 without VNNI/BF16) and
haswell (avx2). One thread, timed by CPU time; the generated Llama-shaped 1B in every format,
prompt lengths 2-256 and 32 generated tokens.

Each cell of the table (tier x weight format) gets the shares of one core's peak that reproduce its
rows through the sizing model itself (`PerfModel` with the candidate table), so table and model
cannot drift apart: prefill_share and half_tokens from the prompt rows, decode_share from the
generation row. The shares are multiples of the core's fp32 FMA peak at the clock it was measured
to run at (`clock.c`: 3.675 GHz here; Zen 4 does 32 fp32 FLOP per cycle), not the nominal clock
the VM reports, so they carry over to CPUs whose clock is known; its one-core streaming read is the
probe's (`waveidp.fleet.probe`).

Prints each cell and its median error, writes the cells into the YAML (--write) and a JSON record.

    .venv/bin/python benchmarks/investigations/cpu/fit_kernels.py --clock-ghz 3.675 \\
        --core-bandwidth-gb-s 40 benchmarks/results/cpu/sweep_{native,isa}.json --write
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]

from waveidp import catalog  # noqa: E402
from waveidp.bench.calibrate import nelder_mead  # noqa: E402
from waveidp.catalog import Hardware  # noqa: E402
from waveidp.sizing import Deployment, Efficiency, PerfModel  # noqa: E402
from waveidp.sizing import _cpu as cpu  # noqa: E402

BUILD_TIER = {
    "native": "avx512_vnni_bf16",
    "avx512_vnni_bf16": "avx512_vnni_bf16",
    "avx512": "avx512",
    "avx2": "avx2",
}
BASE = ("sse4_2", "avx", "avx2", "fma", "f16c")
TIER_FLAGS = {
    "avx2": BASE,
    "avx512": (*BASE, "avx512f", "avx512bw", "avx512vl"),
    "avx512_vnni_bf16": (*BASE, "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"),
}
ZEN4_PER_CYCLE = {"fp32": 32.0, "bf16": 64.0, "int8": 128.0}  # catalog/data/cpu_cores.yaml


def reference_cpu(ghz: float, core_bw: float) -> Hardware:
    return Hardware(
        id="cpu-fit-reference",
        name="the Zen 4 EPYC core of benchmarks/sizing_cpu.py at its measured clock",
        kind="cpu",
        vendor="amd",
        memory_bytes=16 * 1024**3,
        memory_bandwidth_bytes_per_s=1e12,  # one thread: its own stream binds, not the memory's
        dense_flops={k: ghz * 1e9 * v for k, v in ZEN4_PER_CYCLE.items()},  # type: ignore[misc]
        cores=1,
        core_bandwidth_bytes_per_s=core_bw,
        source="benchmarks/investigations/cpu/fit_kernels.py",
    )


class Predictor:
    def __init__(self) -> None:
        self.specs: dict[str, Any] = {}

    def __call__(self, hw: Hardware, row: dict[str, Any], eff: Efficiency) -> float:
        path = row["path"]
        if path not in self.specs:
            self.specs[path] = catalog.model(path)
        ctx = row["n_prompt"] + row["n_gen"] + 256
        d = Deployment.build(self.specs[path], row["quant"], [hw], "llamacpp", threads=1, context=ctx)
        perf = PerfModel(d, eff)
        if row["n_prompt"]:
            return float(row["n_prompt"] / perf.prefill_seconds(row["n_prompt"]))
        return float(1.0 / perf.decode_step_seconds(1, max(1, row["n_gen"] // 2)))


def use(table: cpu.CpuTable) -> None:
    cpu.table = lambda: table  # type: ignore[method-assign]


def with_cell(base: cpu.CpuTable, tier: str, fmt: str, cell: cpu.Kernel) -> cpu.CpuTable:
    kernels = {t: dict(cells) for t, cells in base.kernels.items()}
    kernels.setdefault(tier, {})[fmt] = cell
    return base.model_copy(update={"kernels": kernels})


def start_cell(base: cpu.CpuTable, tier: str, fmt: str) -> cpu.Kernel:
    """The search starts from the cell of the measured tier this one borrows from (`like`), if any:
    the prompt curve (rate, half_tokens) has local minima, and a neighbour's shape is a better
    start than a placeholder's."""
    like = next((t.like for t in base.tiers if t.id == tier), None)
    if like and fmt in base.kernels.get(like, {}):
        return base.kernels[like][fmt]
    _, cell, _ = cpu.kernel_for(TIER_FLAGS[tier], fmt)
    return cell


def fit_cell(
    hw: Hardware, rows: list[dict[str, Any]], table: cpu.CpuTable, tier: str, fmt: str, predict: Predictor
) -> tuple[cpu.Kernel, dict[str, float]]:
    use(table)
    start = start_cell(table, tier, fmt)
    eff = Efficiency(decode_bandwidth=1.0, prefill_compute=1.0, decode_compute=1.0, step_overhead_s=0.0002)
    pp = [r for r in rows if r["n_prompt"]]
    tg = [r for r in rows if not r["n_prompt"]]
    fit_half = len({r["n_prompt"] for r in pp}) >= 2  # else the half-rate length stays as borrowed

    def cell_at(x: list[float]) -> cpu.Kernel:
        return start.model_copy(
            update={
                "prefill_share": min(16.0, max(1e-3, start.prefill_share * math.exp(x[0]))),
                "half_tokens": min(512.0, max(0.05, max(start.half_tokens, 0.05) * math.exp(x[1]))),
                "decode_share": min(16.0, max(1e-3, start.decode_share * math.exp(x[2]))),
            }
        )

    def loss(x: list[float], which: list[dict[str, Any]]) -> float:
        use(with_cell(table, tier, fmt, cell_at(x)))
        return sum(math.log(predict(hw, r, eff) / r["measured"]) ** 2 for r in which)

    x = [0.0, 0.0, 0.0]
    if pp and fit_half:
        x[0], x[1] = nelder_mead(lambda v: loss([v[0], v[1], 0.0], pp), [0.0, 0.0], step=0.5, iters=300)
    elif pp:
        x[0] = nelder_mead(lambda v: loss([v[0], 0.0, 0.0], pp), [0.0], step=0.5, iters=150)[0]
    if tg:
        x[2] = nelder_mead(lambda v: loss([x[0], x[1], v[0]], tg), [0.0], step=0.5, iters=150)[0]
    cell = cell_at(x)
    use(with_cell(table, tier, fmt, cell))
    err = {
        kind: round(statistics.median(abs(predict(hw, r, eff) / r["measured"] - 1) for r in which), 4)
        for kind, which in (("pp", pp), ("tg", tg))
        if which
    }
    return cell, err


def sweep_rows(paths: list[Path]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        for r in json.loads(path.read_text())["rows"]:
            if r["model"].split()[0] != "random-llama-1b" or r["threads"] != 1:
                continue
            out.append(
                {
                    "tier": BUILD_TIER[r["build"]],
                    "format": r["quant"],
                    "quant": r["quant"],
                    "path": str(ROOT / "build/models" / r["file"]),
                    "n_prompt": r["n_prompt"],
                    "n_gen": r["n_gen"],
                    "measured": r["measured_tokens_per_s"],
                }
            )
    return out


def write_cells(path: Path, cells: dict[str, dict[str, dict[str, Any]]], source: str) -> None:
    """Replace the `kernels:` section of the YAML (kept at the end of the file) with `cells`."""
    text = path.read_text()
    head = text[: text.index("\nkernels:\n") + 1]
    lines = ["kernels:"]
    for tier, fmts in cells.items():
        lines.append(f"  {tier}:")
        for fmt, c in fmts.items():
            lines.append(
                f"    {fmt}: {{prefill: {json.dumps(c['prefill'])}, decode: {json.dumps(c['decode'])}, "
                f"dtype: {c['dtype']}, "
                f"prefill_share: {c['prefill_share']:.4g}, decode_share: {c['decode_share']:.4g}, "
                f"half_tokens: {c['half_tokens']:.3g}"
                + (f", source: {json.dumps(c['source'])}" if c.get("source") else "")
                + "}"
            )
    path.write_text(head + "\n".join(lines) + "\n")
    del source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweeps", type=Path, nargs="+", help="sizing_cpu.py --no-calibrate JSON files")
    ap.add_argument("--clock-ghz", type=float, required=True, help="clock.c on this machine")
    ap.add_argument("--core-bandwidth-gb-s", type=float, required=True, help="the probe's one-core figure")
    ap.add_argument("--write", action="store_true", help="write the cells into cpu_kernels.yaml")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cpu/kernel_fit.json")
    args = ap.parse_args()

    rows = sweep_rows(args.sweeps)
    hw = reference_cpu(args.clock_ghz, args.core_bandwidth_gb_s * 1e9)
    predict = Predictor()
    table = cpu.table()
    cells: dict[str, dict[str, dict[str, Any]]] = {}
    report = []
    # two passes: a file's output tensor may be another format (q4_0 files keep a q6_K output), whose
    # cell the first pass may not have fitted yet
    passes = [(tier, fmt) for tier in ("avx512_vnni_bf16", "avx512", "avx2")
              for fmt in sorted({r["format"] for r in rows if r["tier"] == tier})]  # fmt: skip
    for tier, fmt in passes + passes:
        picked = [r for r in rows if r["tier"] == tier and r["format"] == fmt]
        hw_tier = hw.model_copy(update={"cpu_flags": TIER_FLAGS[tier]})
        cell, err = fit_cell(hw_tier, picked, table, tier, fmt, predict)
        table = with_cell(table, tier, fmt, cell)
        cells.setdefault(tier, {})[fmt] = cell.model_dump()
        report = [x for x in report if (x["tier"], x["format"]) != (tier, fmt)]
        report.append(
            {"tier": tier, "format": fmt, "rows": len(picked), "median_error": err, **cell.model_dump()}
        )
        print(
            f"{tier:17s} {fmt:7s} rows {len(picked)}  prefill {cell.prefill_share:.3f} x fp32 "
            f"({cell.dtype}, half at {cell.half_tokens:.1f} tokens)  decode {cell.decode_share:.3f}  "
            f"error {err}"
        )
    if args.write:  # every tier's cells, the fitted ones replaced
        every = {t: {f: c.model_dump() for f, c in fmts.items()} for t, fmts in table.kernels.items()}
        write_cells(ROOT / "src/waveidp/sizing/data/cpu_kernels.yaml", every, " ".join(sys.argv))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "command": " ".join(sys.argv),
        "clock_ghz": args.clock_ghz,
        "core_bandwidth_gb_s": args.core_bandwidth_gb_s,
        "cells": report,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
