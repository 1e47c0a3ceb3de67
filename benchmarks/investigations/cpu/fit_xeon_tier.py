"""Fit the `avx512_fp16` tier of the CPU kernel table (Intel server cores since Sapphire Rapids) to
one-thread llama-bench rows of the H100 host's Xeon (benchmarks/results/cpu/gpu_host).

Input: the generated 1B (the shape of `benchmarks/sizing_cpu.py`) at one thread on llama.cpp's
AVX-512 VNNI/BF16 kernels (the `zen4` variant of build_isa_variants.sh: on that VM the AMX path
dies of SIGILL), prompt rows only (`SOURCES`: q4_0, q8_0, q4_k_m, q6_k and f16 from three VM
starts). Fitted at one clock (`CLOCK_GHZ`), a Golden Cove core's 64 fp32 FLOP per cycle, through
`fit_kernels.fit_cell` (the sizing model itself): prefill_share and half_tokens per format.
The decode shares stay the Zen 4 cells': every tg row there moved 5-6 GB/s per thread whatever the
format (1-4 threads; 55-61 GB/s at 16), so they measure the VM's memory, which a node's calibration
fits (`decode_bandwidth`), not the kernels' compute. Formats not measured get the Zen 4 cell with
its prefill share scaled by the median ratio of the measured ones (a property of the core, not of
the format), and say so in their `source`.

Prints each cell, replaces the `avx512_fp16:` block of cpu_kernels.yaml (--write) and writes
benchmarks/results/cpu/kernel_fit_amx.json.

    .venv/bin/python benchmarks/investigations/cpu/fit_xeon_tier.py --write
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from waveidp.catalog import Hardware
from waveidp.sizing import _cpu as cpu

ROOT = Path(__file__).resolve().parents[3]
HOST = ROOT / "benchmarks/results/cpu/gpu_host"
YAML = ROOT / "src/waveidp/sizing/data/cpu_kernels.yaml"
TIER = "avx512_fp16"
BASE_TIER = "avx512_vnni_bf16"
FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
         "avx512_vnni", "avx512_bf16", "avx512_fp16")  # fmt: skip
# one-thread prompt rows of the 1B, from three VM starts; one clock for all of them, the median of the
# three one-core readings of clock.c (2.735, 2.786, 2.975 GHz): a call's noise (+-25% on the same
# test between calls) is larger than their spread. Not used: amx_build/sweep.jsonl, whose one-thread
# f16/bf16 rows ran at 0.4x the same tests of the other calls and of that call's own 4 threads / 4.
CLOCK_GHZ = 2.786
CORE_GB_S = 13.9  # the probe's one-core figure (calibrate/wave.yaml)
SOURCES = (
    HOST / "calibrate/sweep.jsonl",  # q4_0, q8_0, q4_k_m, q6_k: pp16, pp128
    HOST / "amx_build/zen4.jsonl",  # q4_0, q8_0, q4_k_m: pp128
    HOST / "bench-zen4.jsonl",  # q4_0: pp64, pp256 (first device session)
    HOST / "bench-sapphirerapids.jsonl",  # f16: pp64, pp256 (first device session; no AMX kernel for f16)
)
QUANT = {"llama-1b-q4_0": "q4_0", "llama-1b-q8_0": "q8_0", "llama-1b-q4_k_m": "q4_k_m",
         "llama-1b-q6_k": "q6_k", "llama-1b-f16": "f16"}  # fmt: skip


def fit_kernels() -> Any:
    spec = importlib.util.spec_from_file_location("fit_kernels", Path(__file__).with_name("fit_kernels.py"))
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def golden_cove(ghz: float, core_bw_gb_s: float) -> Hardware:
    return Hardware(
        id="cpu-fit-xeon",
        name="one core of the H100 host's Emerald Rapids Xeon at its measured clock",
        kind="cpu",
        vendor="intel",
        memory_bytes=16 * 1024**3,
        memory_bandwidth_bytes_per_s=1e12,  # one thread: its own stream binds
        dense_flops={"fp32": ghz * 1e9 * 64, "bf16": ghz * 1e9 * 128, "int8": ghz * 1e9 * 256},
        cores=1,
        cpu_flags=FLAGS,
        core_bandwidth_bytes_per_s=core_bw_gb_s * 1e9,
        source="benchmarks/investigations/cpu/fit_xeon_tier.py",
    )


def rows() -> list[tuple[Hardware, dict[str, Any]]]:
    out = []
    hw = golden_cove(CLOCK_GHZ, CORE_GB_S)
    for path in SOURCES:
        for line in path.read_text().splitlines():
            r = json.loads(line)
            stem = Path(r["model_filename"]).stem
            if stem not in QUANT or int(r["n_threads"]) != 1 or not int(r["n_prompt"]):
                continue
            q = QUANT[stem]
            row = {
                "format": q,
                "quant": q,
                "path": str(ROOT / f"build/models/wave-random-llama-1b-{q}.gguf"),
                "n_prompt": int(r["n_prompt"]),
                "n_gen": int(r["n_gen"]),
                "measured": max(float(x) for x in r["samples_ts"]),
            }
            out.append((hw, row))
    return out


def write_block(cells: dict[str, dict[str, Any]]) -> None:
    """Replace (or add, after the kernels: line) this tier's block in cpu_kernels.yaml."""
    lines = YAML.read_text().splitlines()
    start = lines.index("kernels:") + 1
    if f"  {TIER}:" in lines:
        i = lines.index(f"  {TIER}:")
        j = i + 1
        while j < len(lines) and lines[j].startswith("    "):
            j += 1
        del lines[i:j]
        start = i
    block = [f"  {TIER}:"]
    for fmt, c in cells.items():
        block.append(
            f"    {fmt}: {{prefill: {json.dumps(c['prefill'])}, decode: {json.dumps(c['decode'])}, "
            f"dtype: {c['dtype']}, prefill_share: {c['prefill_share']:.4g}, "
            f"decode_share: {c['decode_share']:.4g}, half_tokens: {c['half_tokens']:.3g}, "
            f"source: {json.dumps(c['source'])}}}"
        )
    YAML.write_text("\n".join(lines[:start] + block + lines[start:]) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="write the tier's cells into cpu_kernels.yaml")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cpu/kernel_fit_amx.json")
    args = ap.parse_args()
    fk = fit_kernels()
    fk.TIER_FLAGS[TIER] = FLAGS
    predict = fk.Predictor()
    table = cpu.table()
    data = rows()
    fitted: dict[str, cpu.Kernel] = {}
    report: dict[str, Any] = {}
    # q6_k first: q4_0 files keep a q6_K output
    formats = sorted({r["format"] for _, r in data}, key=lambda f: f != "q6_k")
    for fmt in formats:  # the searches start from the Zen 4 cells
        table = fk.with_cell(table, TIER, fmt, table.kernels[BASE_TIER][fmt])
    for fmt in formats + formats:  # two passes: a file's output tensor runs another format's cell
        picked = [r for _, r in data if r["format"] == fmt]
        hw = next(h for h, r in data if r["format"] == fmt)
        cell, err = fk.fit_cell(hw, picked, table, TIER, fmt, predict)
        cell = cell.model_copy(
            update={"source": f"fit_xeon_tier.py: H100 host Xeon, one thread, prompts at {CLOCK_GHZ} GHz"}
        )
        table = fk.with_cell(table, TIER, fmt, cell)
        fitted[fmt] = cell
        report[fmt] = {"rows": len(picked), "median_error": err, **cell.model_dump()}
    base = table.kernels[BASE_TIER]
    ratio = {
        k: statistics.median(getattr(fitted[f], k) / getattr(base[f], k) for f in fitted)
        for k in ("prefill_share", "decode_share")
    }  # decode_share stays the Zen 4 cell's (no tg row is fitted): ratio 1
    cells: dict[str, dict[str, Any]] = {}
    for fmt, zen in base.items():
        if fmt in fitted:
            cells[fmt] = fitted[fmt].model_dump()
        else:
            cells[fmt] = zen.model_copy(
                update={
                    "prefill_share": zen.prefill_share * ratio["prefill_share"],
                    "decode_share": zen.decode_share * ratio["decode_share"],
                    "source": f"not measured: the {BASE_TIER} cell, prefill x the measured cells' median "
                    f"ratio {ratio['prefill_share']:.3f}",
                }
            ).model_dump()
    for fmt, c in cells.items():
        err = report.get(fmt, {}).get("median_error", "scaled")
        pre, dec = c["prefill_share"] / base[fmt].prefill_share, c["decode_share"] / base[fmt].decode_share
        print(
            f"{TIER} {fmt:7s} prefill {c['prefill_share']:.3f} (half at {c['half_tokens']:.1f}) "
            f"decode {c['decode_share']:.3f}  vs {BASE_TIER} {pre:.2f}x / {dec:.2f}x  {err}"
        )
    if args.write:
        write_block(cells)
    args.out.write_text(
        json.dumps(
            {
                "command": " ".join(["python", *sys.argv]),
                "sources": [str(p.relative_to(ROOT)) for p in SOURCES],
                "clock_ghz": CLOCK_GHZ,
                "core_gb_s": CORE_GB_S,
                "median_ratio_to_" + BASE_TIER: ratio,
                "fitted": report,
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
