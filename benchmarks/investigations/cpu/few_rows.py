"""How fast does ggml-cpu multiply a weight matrix by a few rows of activations?

A decode step of n sequences, or the logits of n prompts, multiplies each weight matrix by n rows. With
n >= 2 ggml-cpu leaves the one-row `vec_dot` for its prompt kernels: tinyBLAS (f16, bf16, q8_0, q5_0,
q4_0 not repacked) runs tiles of 4 weight rows by up to 4 activation rows (`llamafile/sgemm.cpp`,
`tinyBLAS_Q0_AVX::mnpack`: n = 2 runs 4x2 tiles); the repacked formats run their gemv once per row
below 4 rows (`repack.cpp`); the other formats run `vec_dot` once per row and column (k-quants switch to
the tiled kernel at 8 rows). A kernel's rate with 2-4 rows is therefore not a point on its long-prompt
curve, and for tinyBLAS it can be below the one-row gemv: the output matrix of SmolLM2-135M and Gemma
3 270M (q8_0, 576/640 wide, 49k/262k rows) is where two served sequences spend most of their step.

This script calls the wheel's own libggml (ctypes, no build) to time one `ggml_mul_mat` of a weight
matrix (format, K x M) by n f32 rows on one thread, best of `--reps` by the thread's CPU time, and prints
each (format, K, M, n) as ns per weight row and per output element and as a share of the core's fp32
FMA peak (`--peak-gflops`, the reference core of cpu_kernels.yaml: 3.675 GHz x 32). Saves JSON.

    flock /tmp/wave-bench.lock nice -n 10 .venv/bin/python benchmarks/investigations/cpu/few_rows.py
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from waveidp.engines.local_files import llama_tool

ROOT = Path(__file__).resolve().parents[3]
OUT = ROOT / "benchmarks" / "results" / "cpu" / "few_rows.json"
# (format, K, M): the packaged models' output matrices, and the 1B's 2048-wide layer shape
SHAPES = (
    ("q8_0", 640, 262144),
    ("q8_0", 576, 49152),
    ("q8_0", 2048, 49152),
    ("q5_0", 2048, 49152),
    ("f16", 2048, 49152),
    ("bf16", 2048, 49152),
    ("q6_K", 640, 65536),
    ("q6_K", 2048, 49152),
    ("q4_1", 576, 49152),
)


class _InitParams(ctypes.Structure):
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p), ("no_alloc", ctypes.c_bool)]


def _ggml() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    bin_dir = Path(llama_tool("llama-bench")).resolve().parent
    base = ctypes.CDLL(str(bin_dir / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(str(bin_dir / "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
    p, sz, i64 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64
    sig = {
        (base, "ggml_init"): (p, [_InitParams]),
        (base, "ggml_free"): (None, [p]),
        (base, "ggml_new_tensor_2d"): (p, [p, ctypes.c_int, i64, i64]),
        (base, "ggml_get_data"): (p, [p]),
        (base, "ggml_mul_mat"): (p, [p, p, p]),
        (base, "ggml_new_graph"): (p, [p]),
        (base, "ggml_build_forward_expand"): (None, [p, p]),
        (base, "ggml_type_name"): (ctypes.c_char_p, [ctypes.c_int]),
        (base, "ggml_row_size"): (sz, [ctypes.c_int, i64]),
        (base, "ggml_quantize_chunk"): (sz, [ctypes.c_int, p, p, i64, i64, i64, p]),
        (cpu, "ggml_cpu_init"): (None, []),
        (cpu, "ggml_graph_compute_with_ctx"): (ctypes.c_int, [p, p, ctypes.c_int]),
    }
    for (lib, name), (res, args) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    cpu.ggml_cpu_init()
    return base, cpu


def _type_id(base: ctypes.CDLL, name: str) -> int:
    for i in range(64):
        got = base.ggml_type_name(i)
        if got is not None and got.decode() == name:
            return i
    raise SystemExit(f"few_rows.py: ggml has no type {name!r}")


def time_mul_mat(
    base: ctypes.CDLL, cpu: ctypes.CDLL, fmt: str, k: int, m: int, rows: tuple[int, ...], reps: int
) -> dict[int, float]:
    """Best CPU seconds of one ggml_mul_mat (fmt, k x m) by n f32 rows, per n, on one thread."""
    t = _type_id(base, fmt)
    f32 = _type_id(base, "f32")
    weights = base.ggml_row_size(t, k) * m
    n_max = max(rows)
    mem = weights + 8 * k * n_max * len(rows) + 8 * m * n_max * len(rows) + (64 << 20)
    ctx = base.ggml_init(_InitParams(mem, None, False))
    rng = np.random.default_rng(0)
    try:
        a = base.ggml_new_tensor_2d(ctx, t, k, m)
        chunk = 4096
        for r in range(0, m, chunk):
            block = rng.standard_normal((min(chunk, m - r), k), dtype=np.float32)
            # ggml_quantize_chunk reads src + start and writes dst's rows from start / k: hand it the
            # address this block would have in a whole matrix
            src = block.ctypes.data - r * k * block.itemsize
            base.ggml_quantize_chunk(t, src, base.ggml_get_data(a), r * k, block.shape[0], k, None)
        out: dict[int, float] = {}
        for n in rows:
            b = base.ggml_new_tensor_2d(ctx, f32, k, n)
            x = rng.standard_normal((n, k), dtype=np.float32)
            ctypes.memmove(base.ggml_get_data(b), x.ctypes.data, x.nbytes)
            graph = base.ggml_new_graph(ctx)
            base.ggml_build_forward_expand(graph, base.ggml_mul_mat(ctx, a, b))
            cpu.ggml_graph_compute_with_ctx(ctx, graph, 1)  # warm: page in the weights
            best = float("inf")
            for _ in range(reps):
                t0 = time.thread_time()
                cpu.ggml_graph_compute_with_ctx(ctx, graph, 1)
                best = min(best, time.thread_time() - t0)
            out[n] = best
        return out
    finally:
        base.ggml_free(ctx)


def fit_few_rows(results: list[dict[str, float]], peak: float) -> dict[str, dict[str, object]]:
    """Per format measured at several row widths K: time per weight row with n = 2, 3, 4 rows =
    latency + K / 32 blocks x a block's time, least squares with one latency for all n (cpu_kernels.yaml
    `few_rows`): the shares are 2 x 32 x n FLOPs per block time over the fp32 peak."""
    out: dict[str, dict[str, object]] = {}
    for fmt in sorted({str(r["format"]) for r in results}):
        rows = [r for r in results if r["format"] == fmt and 2 <= r["rows"] <= 4]
        if len({r["k"] for r in rows}) < 2:
            continue
        ns = sorted({int(r["rows"]) for r in rows})
        # columns: one block time per n, then the shared latency
        a = np.array([[r["k"] / 32 if r["rows"] == n else 0.0 for n in ns] + [1.0] for r in rows])
        y = np.array([r["ns_per_weight_row"] * 1e-9 for r in rows])
        x, *_ = np.linalg.lstsq(a, y, rcond=None)
        worst = float(np.max(np.abs(a @ x / y - 1)))
        out[fmt] = {
            "rows": ns,
            "shares": [round(float(2 * 32 * n / x[i] / peak), 3) for i, n in enumerate(ns)],
            "row_latency_ns": round(float(x[-1]) * 1e9, 1),
            "worst_error": round(worst, 3),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1,2,3,4,8,16", help="activation rows (n)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--peak-gflops", type=float, default=3.675 * 32, help="one core's fp32 FMA peak")
    ap.add_argument("--only", default="", help="comma-separated formats (default: all shapes)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    rows = tuple(int(x) for x in args.rows.split(","))
    only = set(filter(None, args.only.split(",")))
    base, cpu = _ggml()
    load = os.getloadavg()
    results = []
    for fmt, k, m in SHAPES:
        if only and fmt not in only:
            continue
        # k-quants switch to the tiled kernel at 8 rows, whose scratch this bare graph does not plan
        fmt_rows = tuple(n for n in rows if n < 8) if fmt.endswith("_K") else rows
        secs = time_mul_mat(base, cpu, fmt, k, m, fmt_rows, args.reps)
        one = secs[fmt_rows[0]] / fmt_rows[0]
        for n, s in secs.items():
            share = 2 * k * m * n / s / (args.peak_gflops * 1e9)
            row = {
                "format": fmt, "k": k, "m": m, "rows": n, "ms": round(s * 1e3, 3),
                "ns_per_weight_row": round(s / m * 1e9, 2), "ns_per_output": round(s / m / n * 1e9, 2),
                "vs_gemv_per_output": round(s / n / one, 3), "share_of_fp32_peak": round(share, 4),
            }  # fmt: skip
            results.append(row)
            print(
                f"{fmt:5} K={k:5} M={m:6} n={n:2}  {row['ms']:8.2f} ms  {row['ns_per_output']:6.1f} ns/output"
                f"  x{row['vs_gemv_per_output']:.2f} of the gemv's  share {share:.3f}",
                flush=True,
            )
    fits = fit_few_rows(results, args.peak_gflops * 1e9)
    for fmt, fit in fits.items():
        print(f"{fmt}: {fit['row_latency_ns']:.0f} ns per weight row + dot products at {fit['shares']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "ggml mul_mat by a few activation rows, one thread, best CPU time",
        "command": "flock /tmp/wave-bench.lock nice -n 10 .venv/bin/python " + shlex.join(sys.argv),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_before": [round(x, 2) for x in load],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "peak_gflops": args.peak_gflops,
        "results": results,
        "few_rows_fit": fits,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
