"""Fit the CPU kernel table (src/waveidp/sizing/data/cpu_kernels.yaml) to llama-bench measurements.

Input: the rows of `benchmarks/sizing_cpu.py` (this machine: the native, AVX2, AVX-512 and
AVX-512 VNNI/BF16 builds, the generated 1B in each format, threads 1 and 2, prompt lengths 2-512)
and, with --device, the GPU machine's host CPU
(`benchmarks/investigations/cpu/device_cpu.sh`: threads 1-16). Each cell of the table (instruction-
set tier x weight format) gets the shares of the
core's peak that reproduce its rows through the sizing model itself (`PerfModel` with the
candidate table), so the table and the model cannot drift apart:

  * prefill_share and half_tokens from the prompt-processing rows (prompt lengths 2-512),
  * decode_share from the token-generation rows,

against the core's peaks at the clock it was measured to run at (`benchmarks/investigations/cpu/clock.c`), not
the nominal clock a VM reports, so the shares carry over to CPUs whose clock is known. Global:
the attention share and the fixed time per decode step. Prints the cells as YAML and the fit's
error per cell; writes benchmarks/results/cpu/kernel_fit.json.

    .venv/bin/python benchmarks/investigations/cpu/fit_kernels.py --clock-ghz 3.7 --core-bandwidth-gb-s 40
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "benchmarks"))

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
TIER_FLAGS = {
    "avx2": ("avx2", "fma", "f16c"),
    "avx512": ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl"),
    "avx512_vnni_bf16": (
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
        "avx512_bf16",
    ),
    "amx": (
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512_vnni",
        "avx512_bf16",
        "amx_int8",
        "amx_tile",
    ),
}


def reference_cpu(
    name: str, ghz: float, per_cycle: dict[str, float], cores: int, core_bw: float, mem_bw: float
) -> Hardware:
    return Hardware(
        id="cpu-fit-reference",
        name=name,
        kind="cpu",
        vendor="measured",
        memory_bytes=64 * 1024**3,
        memory_bandwidth_bytes_per_s=mem_bw,
        dense_flops={k: cores * ghz * 1e9 * v for k, v in per_cycle.items()},  # type: ignore[misc]
        cores=cores,
        core_bandwidth_bytes_per_s=core_bw,
        source="benchmarks/investigations/cpu/fit_kernels.py",
    )


def predict(hw: Hardware, row: dict[str, Any], eff: Efficiency, spec_cache: dict[str, Any]) -> float:
    path = row["path"]
    if path not in spec_cache:
        spec_cache[path] = catalog.model(path)
    d = Deployment.build(
        spec_cache[path],
        row["quant"],
        [hw],
        "llamacpp",
        threads=row["threads"],
        context=row["n_prompt"] + row["n_gen"] + 256,
    )
    perf = PerfModel(d, eff)
    if row["n_prompt"]:
        return row["n_prompt"] / perf.prefill_seconds(row["n_prompt"])
    return 1.0 / perf.decode_step_seconds(1, max(1, row["n_gen"] // 2))


def with_cell(base: cpu.CpuTable, tier: str, fmt: str, cell: cpu.Kernel, **globals_: float) -> cpu.CpuTable:
    kernels = {t: dict(cells) for t, cells in base.kernels.items()}
    kernels.setdefault(tier, {})[fmt] = cell
    return base.model_copy(update={"kernels": kernels, **globals_})


def use(table: cpu.CpuTable) -> None:
    cpu.table = lambda: table  # type: ignore[method-assign]


def fit_cell(
    hw: Hardware, rows: list[dict[str, Any]], base: cpu.CpuTable, tier: str, fmt: str, eff: Efficiency
) -> tuple[cpu.Kernel, dict[str, float]]:
    start = base.kernels.get(tier, {}).get(fmt) or base.kernels["avx2"][fmt]
    pp = [r for r in rows if r["n_prompt"]]
    tg = [r for r in rows if not r["n_prompt"]]
    cache: dict[str, Any] = {}

    def cell_at(x: list[float]) -> cpu.Kernel:
        return start.model_copy(
            update={
                "prefill_share": min(1.0, max(1e-3, start.prefill_share * math.exp(x[0]))),
                "half_tokens": min(512.0, max(0.0, start.half_tokens * math.exp(x[1]))),
                "decode_share": min(1.0, max(1e-3, start.decode_share * math.exp(x[2]))),
            }
        )

    def loss(x: list[float], which: list[dict[str, Any]]) -> float:
        use(with_cell(base, tier, fmt, cell_at(x)))
        return sum(math.log(predict(hw, r, eff, cache) / r["measured"]) ** 2 for r in which)

    x = [0.0, 0.0, 0.0]
    if pp:
        best = nelder_mead(lambda v: loss([v[0], v[1], 0.0], pp), [0.0, 0.0], step=0.4, iters=200)
        x[0], x[1] = best
    if tg:
        best = nelder_mead(lambda v: loss([x[0], x[1], v[0]], tg), [0.0], step=0.4, iters=100)
        x[2] = best[0]
    cell = cell_at(x)
    use(with_cell(base, tier, fmt, cell))
    err = {
        kind: statistics.median(abs(predict(hw, r, eff, cache) / r["measured"] - 1) for r in which)
        for kind, which in (("pp", pp), ("tg", tg))
        if which
    }
    return cell, err


def local_rows(path: Path, models_dir: Path) -> list[dict[str, Any]]:
    doc = json.loads(path.read_text())
    out = []
    for r in doc["rows"]:
        if r["model"].split()[0] != "random-llama-1b" or r["build"] not in BUILD_TIER:
            continue
        out.append(
            {
                "tier": BUILD_TIER[r["build"]],
                "build": r["build"],
                "format": r["quant"],
                "quant": r["quant"],
                "path": str(models_dir / r["file"]),
                "threads": r["threads"],
                "n_prompt": r["n_prompt"],
                "n_gen": r["n_gen"],
                "measured": r["measured_tokens_per_s"],
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks/results/sizing_cpu.json")
    ap.add_argument("--models-dir", type=Path, default=ROOT / "build/models")
    ap.add_argument(
        "--clock-ghz", type=float, required=True, help="benchmarks/investigations/cpu/clock.c on this machine"
    )
    ap.add_argument(
        "--core-bandwidth-gb-s", type=float, required=True, help="the probe's one-core figure here"
    )
    ap.add_argument("--threads", type=int, default=1, help="fit on rows with this many threads")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cpu/kernel_fit.json")
    args = ap.parse_args()

    rows = [r for r in local_rows(args.results, args.models_dir) if r["threads"] == args.threads]
    # this machine: Zen 4, 2 x 256-bit FMA (catalog/data/cpu_cores.yaml), at the clock it runs at
    hw = reference_cpu(
        "reference: the EPYC (Zen 4) of benchmarks/sizing_cpu.py",
        args.clock_ghz,
        {"fp32": 32, "bf16": 64, "int8": 128},
        2,
        args.core_bandwidth_gb_s * 1e9,
        2 * args.core_bandwidth_gb_s * 1e9,
    )
    eff = Efficiency(decode_bandwidth=1.0, prefill_compute=1.0, decode_compute=1.0, step_overhead_s=0.0002)
    base = cpu.table()
    cells: dict[str, dict[str, Any]] = {}
    report = []
    table = base
    for tier in sorted({r["tier"] for r in rows}):
        for fmt in sorted({r["format"] for r in rows if r["tier"] == tier}):
            picked = [r for r in rows if r["tier"] == tier and r["format"] == fmt]
            hw_tier = hw.model_copy(update={"cpu_flags": TIER_FLAGS[tier]})
            cell, err = fit_cell(hw_tier, picked, table, tier, fmt, eff)
            table = with_cell(table, tier, fmt, cell)
            cells.setdefault(tier, {})[fmt] = cell.model_dump(exclude_defaults=True)
            report.append(
                {"tier": tier, "format": fmt, "rows": len(picked), "median_error": err, **cell.model_dump()}
            )
            print(
                f"{tier:18s} {fmt:7s} rows {len(picked):2d}  prefill {cell.prefill_share:.3f} "
                f"(half {cell.half_tokens:.1f} tok)  decode {cell.decode_share:.3f}  error {err}"
            )
    print(yaml.safe_dump({"kernels": cells}, sort_keys=False, width=140))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"command": " ".join(sys.argv), "clock_ghz": args.clock_ghz, "cells": report}, indent=1)
        + "\n"
    )


if __name__ == "__main__":
    main()
