"""Sizing prediction error on THIS machine's CPU, measured with the real llama.cpp `llama-bench`
and `llama-server`, before and after `wave fleet detect --calibrate`.

llama-bench runs with llama.cpp built for several instruction-set levels of this one CPU (an
AVX-512 VNNI/BF16 EPYC): the venv's native build, and the builds of
`benchmarks/investigations/cpu/build_isa_variants.sh` restricted to AVX2 (haswell: stands in for the
i9-9980HK class), to AVX-512 without VNNI
and BF16 (skylakex) and to AVX-512 VNNI/BF16 (zen4: the Ryzen 9 9900X class). Models: SmolLM2-135M
(Q4_1, the embedded model), Gemma 3 270M (Q4_K_M) and a generated random-weight Llama-shaped 1.07B
in many formats (f16, then `llama-quantize`). Threads 1 and 2; prompt lengths from 2 to 512.

Each test is predicted by `waveidp.sizing` for this CPU as `wave fleet detect` describes it (its
flags cut to the build's instruction set, so the CPU prior picks that tier's kernels):

  * prior:      what detection read (cores, nominal clock, flags, the bandwidth probe), no calibration;
  * calibrated: the same node after `wave fleet detect --calibrate` (run here, as a user would: the
                native build on the packaged models, threads 1 and 2); a restricted build's rows
                after that build's own quick calibration where its rows hold the quick tests (the
                same fit on its packaged models' pp128 and tg32 at one thread, the flags cut to
                the build's), as on a CPU of that tier.

Then the real llama-server (1 thread, -np = clients) serves SmolLM2 and Gemma to 1 and 2 clients,
measured by `wave bench` and predicted by replaying that run (`waveidp.bench.predict.predict_runs`)
on the same two descriptions; 3 runs per point on fresh servers, the best throughput kept.

Prints the tables, saves JSON (with the exact commands) and PNGs under benchmarks/results/.

    nice flock /tmp/wave-bench.lock .venv/bin/python benchmarks/sizing_cpu.py   # ~20 min, 2 shared cores
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import json
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np
from local_llama import llama_server
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from waveidp import catalog, fleet
from waveidp.bench.llama_bench import (
    BenchRow,
    LlamaBenchError,
    llama_bench_command,
    run_cpu_timed,
    run_llama_bench,
    tests_in,
)
from waveidp.bench.node_calibration import predict_tokens_per_s
from waveidp.bench.quick_fit import Measured, model_of
from waveidp.bench.report import BenchReport
from waveidp.catalog import Hardware
from waveidp.engines.llamacpp import LlamaServerSpec
from waveidp.engines.local_files import embedded_model_path, llama_tool
from waveidp.loopback import free_port
from waveidp.models import gemma_model_path
from waveidp.sizing import Deployment, efficiency_of

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
console = Console()

# A Llama-shaped ~1.07B model: big enough that weights, not caches, dominate every token.
SHAPE = {"hidden": 2048, "layers": 16, "heads": 32, "kv_heads": 8, "ff": 8192, "context": 4096}
FORMATS = ("q4_0", "q4_1", "q8_0", "q4_k_m", "q5_k_m", "q6_k", "f16", "bf16")
BORROWED = ("q5_0", "q3_k_m", "q2_k", "iq4_xs")  # formats the kernel table maps to a measured one
PACKAGED = ("smollm2-135m q4_1", "gemma-3-270m q4_k_m")  # the models a quick calibration measures

# llama.cpp builds: name -> (folder under --isa-dir holding llama-bench, or None = the venv's native
# build; the CPU flags that build can use)
X86_BASE = {"sse4_2", "avx", "avx2", "fma", "f16c"}
AVX512 = X86_BASE | {"avx512f", "avx512bw", "avx512vl"}
BUILDS: dict[str, tuple[str | None, set[str] | None]] = {
    "native": (None, None),
    "avx2": ("haswell", X86_BASE),
    "avx512": ("skylakex", AVX512),
    "avx512_vnni_bf16": ("zen4", AVX512 | {"avx512_vnni", "avx512_bf16"}),
}

# ---- the generated model -------------------------------------------------------------------------


def generate_llama_gguf(path: Path, tokenizer_from: Path) -> Path:
    """Write a random-weight Llama-shaped f16 GGUF; the tokenizer is copied from a real GGUF."""
    import gguf

    if path.exists():
        return path
    reader = gguf.GGUFReader(str(tokenizer_from))
    vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    h, n_layer, heads, kv, ff = (SHAPE[k] for k in ("hidden", "layers", "heads", "kv_heads", "ff"))
    head_dim = h // heads
    tmp = path.with_suffix(".tmp")
    w = gguf.GGUFWriter(str(tmp), "llama")
    w.add_name("wave-random-llama-1b")
    w.add_context_length(SHAPE["context"])
    w.add_embedding_length(h)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for name, field in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        types = field.types
        if types[0] == gguf.GGUFValueType.ARRAY:
            values = [field.contents(i) for i in range(len(field.data))]
            w.add_key_value(name, values, types[0], sub_type=types[-1])
        else:
            w.add_key_value(name, field.contents(), types[0])
    rng = np.random.default_rng(42)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)

    ones = np.ones(h, dtype=np.float32)
    w.add_tensor("token_embd.weight", rand(vocab, h))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones)
        w.add_tensor(p + "attn_q.weight", rand(h, h))
        w.add_tensor(p + "attn_k.weight", rand(kv * head_dim, h))
        w.add_tensor(p + "attn_v.weight", rand(kv * head_dim, h))
        w.add_tensor(p + "attn_output.weight", rand(h, h))
        w.add_tensor(p + "ffn_norm.weight", ones)
        w.add_tensor(p + "ffn_gate.weight", rand(ff, h))
        w.add_tensor(p + "ffn_up.weight", rand(ff, h))
        w.add_tensor(p + "ffn_down.weight", rand(h, ff))
    w.add_tensor("output_norm.weight", ones)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(path)
    return path


def quantize(src: Path, quant: str) -> Path:
    out = src.with_name(src.name.replace("-f16.gguf", f"-{quant}.gguf"))
    if not out.exists():
        tmp = out.with_suffix(".tmp")
        subprocess.run(
            [str(llama_tool("llama-quantize")), str(src), str(tmp), quant.upper(), "2"],
            check=True,
            capture_output=True,
            timeout=600,
        )
        tmp.replace(out)
    return out


# ---- the CPU as wave fleet detect sees it, before and after --calibrate -----------------------------


def detect_and_calibrate(
    work: Path, reps: int, threads: str
) -> tuple[Hardware, Hardware, str, dict[str, Any]]:
    """(prior, calibrated) hardware of this node's CPU, from the real `wave fleet detect --calibrate`
    (the packaged models at `threads`), its command and the stored calibration."""
    target = work / "wave.yaml"
    cmd = [
        str(Path(sys.executable).with_name("wave")),
        "fleet",
        "detect",
        "--name",
        "this-machine",
        "--calibrate",
        "--threads",
        threads,
        "--reps",
        str(reps),
        "--merge",
        str(target),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"wave fleet detect --calibrate failed: {done.stderr[-2000:]}")
    console.print(done.stderr)
    node = fleet.load(target).node("this-machine")
    cpu = next(d for d in node.devices if d.id == "cpu")
    calibrated = fleet.device_hardware(cpu, node)
    prior = fleet.device_hardware(cpu.model_copy(update={"calibration": {}}), node)
    cal = cpu.calibration["llamacpp"].model_dump(mode="json")
    return (
        prior,
        calibrated,
        shlex.join([*cmd[:-1], "wave.yaml"]),
        {"node": node.model_dump(mode="json"), **cal},
    )


def for_build(hw: Hardware, flags: set[str] | None) -> Hardware:
    """`hw` with only the instruction sets a restricted build uses (None: all it has)."""
    if flags is None:
        return hw
    return hw.model_copy(update={"cpu_flags": tuple(f for f in hw.cpu_flags if f in flags)})


# ---- llama-bench -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    label: str
    path: Path


def bench_binary(build: str, isa_dir: Path) -> Path:
    folder = BUILDS[build][0]
    return llama_tool("llama-bench") if folder is None else isa_dir / folder / "llama-bench"


def measure(
    builds: list[str], models: list[Model], plan: dict[str, tuple[list[int], list[int], list[int]]], args: Any
) -> list[tuple[str, Model, Measured]]:
    """llama-bench rows per (build, model): plan[build] = (threads, prompts, gens). One-thread tests
    are timed by llama-bench's CPU time per repetition (`run_cpu_timed`: this machine's 2 cores are
    shared, and other processes' time slices must not count); more threads by the wall clock, best
    repetition. `args.rounds` rounds each measure every test once, in the same order, so drift in
    the machine's speed hits all formats alike; a row is the median of its rounds."""
    jobs = []
    for m in models:  # round-robin over builds per model, so a neighbour's load spreads over all
        for b in builds:
            if m.label.split()[-1] in BORROWED and b != "native":
                continue
            threads, prompts, gens = plan[b]
            jobs.append((b, m, threads, [64] if m.label.split()[-1] in BORROWED else prompts, gens))
    total = args.rounds * sum(tests_in(t, p, g) for _, _, t, p, g in jobs)
    got: dict[tuple[str, str, int, int, int], list[BenchRow]] = {}
    with Progress(console=console) as progress:
        task = progress.add_task("llama-bench", total=total)
        for rnd in range(args.rounds):
            for b, m, threads, prompts, gens in jobs:
                binary = bench_binary(b, args.isa_dir)
                progress.update(task, description=f"llama-bench round {rnd + 1}/{args.rounds} {b} {m.label}")
                rows: list[BenchRow] = []
                if 1 in threads:
                    for kw in [{"n_prompt": p} for p in prompts] + [{"n_gen": g} for g in gens]:
                        try:
                            rows.append(run_cpu_timed(binary, m.path, reps=args.reps, **kw))
                        except LlamaBenchError as exc:  # kept in the log; the sweep goes on
                            console.print(f"[red]failed[/] {b} {m.label} {kw}: {exc}")
                        progress.advance(task)
                more = [t for t in threads if t > 1]
                if more:
                    cmd = llama_bench_command(
                        binary, m.path, threads=more, prompts=prompts, gens=gens, reps=args.reps
                    )
                    rows += run_llama_bench(cmd, on_row=lambda _r: progress.advance(task))
                for r in rows:
                    got.setdefault((b, m.label, r.threads, r.n_prompt, r.n_gen), []).append(r)
    out: list[tuple[str, Model, Measured]] = []
    for b, m, *_ in jobs:
        spec, quant = model_of(m.path)
        for key, rounds in got.items():
            if key[:2] == (b, m.label):
                out.append((b, m, Measured(median_of_rounds(rounds), spec, quant)))
    return out


def median_of_rounds(rows: list[BenchRow]) -> BenchRow:
    """One test measured in several rounds: the median round's rate, every round's samples."""
    if len(rows) == 1:
        return rows[0]
    rates = sorted(r.tokens_per_s for r in rows)
    mid = len(rates) // 2
    rate = rates[mid] if len(rates) % 2 else (rates[mid - 1] + rates[mid]) / 2
    return replace(
        rows[0],
        tokens_per_s=rate,
        mean_tokens_per_s=statistics.fmean(r.mean_tokens_per_s for r in rows),
        samples=tuple(x for r in rows for x in r.samples),
        command=f"{rows[0].command}  [median of {len(rows)} rounds: "
        + ", ".join(f"{r.tokens_per_s:.4g}" for r in rows)
        + " tok/s]",
    )


def row_doc(build: str, m: Model, x: Measured) -> dict[str, Any]:
    """What one llama-bench test measured (predictions are added by `add_predictions`)."""
    r: BenchRow = x.row
    return {
        "build": build,
        "model": m.label,
        "file": m.path.name,
        "path": str(m.path),
        "file_bytes": m.path.stat().st_size,
        "quant": x.quant,
        "threads": r.threads,
        "test": r.test,
        "n_prompt": r.n_prompt,
        "n_gen": r.n_gen,
        "measured_tokens_per_s": r.tokens_per_s,
        "timing": "cpu" if r.threads == 1 else "wall",
        "mean_tokens_per_s": r.mean_tokens_per_s,
        "samples": list(r.samples),
        "llama_bench_command": r.command,
        "build_commit": r.build,
        "cpu_info": r.cpu_info,
    }


def measured_of(row: dict[str, Any], specs: dict[str, Any]) -> Measured:
    """A results row as the test the calibration and the predictions take."""
    if row["path"] not in specs:
        specs[row["path"]] = catalog.model(row["path"])
    bench = BenchRow(
        model=Path(row["path"]),
        threads=row["threads"],
        n_prompt=row["n_prompt"],
        n_gen=row["n_gen"],
        tokens_per_s=row["measured_tokens_per_s"],
        mean_tokens_per_s=row["mean_tokens_per_s"],
        samples=tuple(row["samples"]),
        command=row["llama_bench_command"],
    )
    return Measured(bench, specs[row["path"]], row["quant"])


def own_calibrations(rows: list[dict[str, Any]], prior: Hardware) -> dict[str, dict[str, Any]]:
    """Per restricted build: the factors `wave calibrate --quick` would store on a CPU with only that
    build's instruction sets, running that build (the quick calibration's own fit,
    `node_calibration.calibration`, on its own tests: the packaged models' pp128 and tg32 at one
    thread, taken from the build's rows), with its error before and after on those tests. The
    generated 1B is held out of it."""
    from waveidp.bench.node_calibration import QUICK_GEN, QUICK_PROMPT, calibration

    specs: dict[str, Any] = {}
    quick = {(QUICK_PROMPT, 0), (0, QUICK_GEN)}
    out = {}
    for build in sorted({r["build"] for r in rows}):
        flags = BUILDS[build][1]
        tests = [
            measured_of(r, specs)
            for r in rows
            if r["build"] == build
            and r["model"] in PACKAGED
            and r["threads"] == 1
            and (r["n_prompt"], r["n_gen"]) in quick
        ]
        if flags is None or not tests:
            continue
        hw = for_build(prior.model_copy(update={"calibration": {}}), flags)
        cal = calibration(hw, tests, efficiency_of(hw, "llamacpp"))
        out[build] = {
            "factors": cal.factors(),
            "tests": [f"{m.row.model.name} {m.row.test}" for m in cal.tests],
            "error_before": cal.error(cal.prior),
            "error_after": cal.error(cal.fitted),
        }
    return out


def add_predictions(
    rows: list[dict[str, Any]],
    prior: Hardware,
    calibrated: Hardware,
    own: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Each row's prediction for this CPU as detected (prior) and after its calibration: a
    restricted build's rows after that build's own calibration where `own` has one (see
    `own_calibrations`), else after the node's."""
    from waveidp.sizing import cpu_kernel_for as kernel_for

    specs: dict[str, Any] = {}
    for row in rows:
        x = measured_of(row, specs)
        flags = BUILDS[row["build"]][1]
        hw_prior, hw_cal = for_build(prior, flags), for_build(calibrated, flags)
        if own and row["build"] in own:
            factors = {"llamacpp": own[row["build"]]["factors"]}
            hw_cal = hw_prior.model_copy(update={"calibration": factors})
        p = predict_tokens_per_s(hw_prior, x, efficiency_of(hw_prior, "llamacpp"))
        c = predict_tokens_per_s(hw_cal, x, efficiency_of(hw_cal, "llamacpp"))
        tier, kernel, note = kernel_for(hw_prior.cpu_flags, row["quant"])
        row |= {
            "predicted_prior": p,
            "predicted_calibrated": c,
            "ratio_prior": p / row["measured_tokens_per_s"],
            "ratio_calibrated": c / row["measured_tokens_per_s"],
            "tier": tier.id,
            "kernel": kernel.prefill if row["n_prompt"] else kernel.decode,
            "kernel_note": note,
        }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median |ratio - 1| per (build, kind), and per build, kind and model group (the packaged
    models a quick calibration runs, the generated 1B the kernel cells are fitted to), before and
    after calibration, and the worst ratio."""
    out: dict[str, Any] = {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        kind = "pp" if r["n_prompt"] else "tg"
        which = "packaged" if r["model"] in PACKAGED else "generated"
        groups.setdefault(f"{r['build']} {kind}", []).append(r)
        groups.setdefault(f"{r['build']} {kind} {which}", []).append(r)
        groups.setdefault(f"all {kind}", []).append(r)
    for name, rs in sorted(groups.items()):
        out[name] = {
            "n": len(rs),
            **{
                f"median_error_{w}": statistics.median(abs(r[f"ratio_{w}"] - 1) for r in rs)
                for w in ("prior", "calibrated")
            },
            **{
                f"worst_ratio_{w}": max((r[f"ratio_{w}"] for r in rs), key=lambda v: max(v, 1 / v))
                for w in ("prior", "calibrated")
            },
        }
    return out


# ---- llama-server ----------------------------------------------------------------------------------


def server_spec(model: Path, n_prompt: int, n_gen: int, parallel: int) -> LlamaServerSpec:
    """llama-server for `model` on loopback: 1 thread, `parallel` slots."""
    return LlamaServerSpec(
        binary=llama_tool("llama-server"),
        model=model,
        port=free_port(),
        alias=model.stem,
        threads=1,  # llama-server's batch threads default to the same
        parallel=parallel,
        context=parallel * (n_prompt + n_gen + 64),
        embeddings=False,
    )


SERVED_KEYS = ("ttft_ms", "itl_ms", "output_tokens_per_s")


def wave_bench_served(
    model: Path,
    catalog_id: str,
    device: str,
    n_prompt: int,
    n_gen: int,
    parallel: int,
    rounds: int,
) -> dict[str, Any]:
    """One `wave bench` run (closed loop, `parallel` clients, `rounds` requests each, streamed
    completions) against a fresh llama-server; the measurement is the client's: TTFT and ITL p50
    and output tok/s from its results.json, kept whole for `predict_served`."""
    from waveidp.bench.predict import predict_runs

    if catalog.model(str(model)).params != catalog.model(catalog_id).params:
        raise RuntimeError(f"{model.name} is not the catalog's {catalog_id}")
    quant = Deployment.build(catalog.model(str(model)), None, [device], "llamacpp").quant.id
    spec = server_spec(model, n_prompt, n_gen, parallel)
    with llama_server(spec) as (base, server_cmd), TemporaryDirectory() as tmp:
        cmd = [
            str(Path(sys.executable).with_name("wave")),
            "bench",
            "--url",
            base,
            "-m",
            model.stem,
            "--endpoint",
            "completions",
            "-c",
            str(parallel),
            "-n",
            str(rounds * parallel),
            "--duration",
            "90",
            "--grace",
            "30",
            "--timeout",
            "120",
            "--input-tokens",
            str(n_prompt),
            "--output-tokens",
            str(n_gen),
            "--ignore-eos",
            "--warmup",
            "1",
            "--predict",
            "--model-id",
            catalog_id,
            "--quant",
            quant,
            "--device",
            device,
            "--engine",
            "llamacpp",
            "--parallel",
            str(parallel),
            "--threads",
            "1",
            "--no-chunks",
            "--no-plots",
            "--out",
            tmp,
            "--json",
        ]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=180)
        report = BenchReport.load(Path(tmp))
    (row,) = (p.model_dump() for p in predict_runs(report))
    s = report.runs[0].summary.model_dump()
    return {
        "file": str(model),
        "server_command": server_cmd,
        "bench_command": shlex.join([*cmd[:-3], "--out", "DIR", "--json"]),
        "completed": s["completed"],
        "errors": s.get("errors"),
        "prompt_tokens_mean": s["input_tokens"]["mean"],
        "output_tokens_mean": s["output_tokens"]["mean"],
        "measured": {k: row[k]["measured"] for k in SERVED_KEYS},
        "report": report.model_dump(mode="json"),
        "ttft_ms_summary": s["ttft_ms"],
    }


# ---- the run -----------------------------------------------------------------------------------------


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--builds", default=",".join(BUILDS), help="llama.cpp builds to measure")
    ap.add_argument(
        "--isa-dir", type=Path, default=ROOT / "build" / "llama-isa", help="build_isa_variants.sh PREFIX"
    )
    ap.add_argument("--threads", default="1", help="thread counts (native build)")
    ap.add_argument("--isa-threads", default="1", help="thread counts (the restricted builds)")
    ap.add_argument(
        "--calibrate-threads",
        default="1",
        help="wave fleet detect --calibrate --threads (1 here: on 2 cores that other processes share, "
        "llama.cpp's 2-thread runs stall at every op barrier and measure the neighbours)",
    )
    ap.add_argument("--prompts", default="16,128", help="prompt lengths (the restricted builds)")
    ap.add_argument("--sweep", default="2,16,64,256", help="prompt lengths (native build)")
    ap.add_argument("--n-gen", type=int, default=32)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument(
        "--rounds", type=int, default=1, help="measure every llama-bench test this many times, interleaved"
    )
    ap.add_argument(
        "--models-dir", type=Path, default=ROOT / "build" / "models", help="generated models (cached)"
    )
    ap.add_argument("--formats", default=",".join(FORMATS + BORROWED), help="formats of the generated 1B")
    ap.add_argument("--skip-generated", action="store_true", help="only the two packaged models")
    ap.add_argument("--skip-served", action="store_true")
    ap.add_argument(
        "--no-calibrate", action="store_true", help="predict with the prior only (a sweep for fit_kernels.py)"
    )
    ap.add_argument("--serve-prompt", type=int, default=128, help="llama-server prompt tokens")
    ap.add_argument("--serve-gen", type=int, default=64, help="llama-server generated tokens")
    ap.add_argument("--serve-rounds", type=int, default=4, help="wave bench requests per client")
    ap.add_argument("--serve-repeats", type=int, default=3, help="wave bench runs per point (best kept)")
    ap.add_argument("--out", type=Path, default=RESULTS / "sizing_cpu.json")
    ap.add_argument(
        "--repredict",
        type=Path,
        help="measure nothing: recompute this results file's predictions with the current sizing model "
        "(the calibration refitted to its stored measurements), e.g. after fit_kernels.py",
    )
    args = ap.parse_args()
    if args.repredict:
        repredict(args.repredict, args.out)
        return
    builds = args.builds.split(",")
    started = time.monotonic()
    load_before = os.getloadavg()

    if args.no_calibrate:
        from waveidp.fleet.detect import detect_local_node

        node = detect_local_node("this-machine", probe=True)
        prior = calibrated = fleet.device_hardware(node.devices[0], node)
        calib_cmd, calibration = "", {}
    else:
        with TemporaryDirectory() as work:
            console.print("[bold]wave fleet detect --calibrate[/] (native llama-bench, packaged models)")
            prior, calibrated, calib_cmd, calibration = detect_and_calibrate(
                Path(work), args.reps + 1, args.calibrate_threads
            )
    peaks = {k: f"{v / 1e9:.0f}" for k, v in prior.dense_flops.items()}
    console.print(
        f"this CPU as detected: {prior.name}, {prior.cores} cores, flags {' '.join(prior.cpu_flags)}, "
        f"peak GFLOP/s {peaks}, memory {prior.memory_bandwidth_bytes_per_s / 1e9:.0f} GB/s"
    )

    models = [
        Model(PACKAGED[0], embedded_model_path()),
        Model(PACKAGED[1], gemma_model_path()),
    ]
    if not args.skip_generated:
        args.models_dir.mkdir(parents=True, exist_ok=True)
        with console.status("generating the random-weight Llama-shaped 1B f16 GGUF (cached)"):
            f16 = generate_llama_gguf(
                args.models_dir / "wave-random-llama-1b-f16.gguf", embedded_model_path()
            )
        for fmt in args.formats.split(","):
            with console.status(f"llama-quantize -> {fmt} (cached)"):
                models.append(Model(f"random-llama-1b {fmt}", f16 if fmt == "f16" else quantize(f16, fmt)))

    threads = ints(args.threads)
    plan = {
        b: (threads, ints(args.sweep), [args.n_gen])
        if b == "native"
        else (ints(args.isa_threads), ints(args.prompts), [args.n_gen])
        for b in builds
    }
    measured = measure(builds, models, plan, args)
    rows = [row_doc(b, m, x) for b, m, x in measured]
    own = own_calibrations(rows, prior)
    add_predictions(rows, prior, calibrated, own)
    print_rows(rows)
    summary = summarize(rows)
    print_summary(summary, own)

    served = [] if args.skip_served else serve(models[:2], {"prior": prior, "calibrated": calibrated}, args)

    doc = {
        "benchmark": "sizing_cpu",
        "command": shlex.join([sys.executable, *sys.argv]),
        "calibration_command": calib_cmd,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "cpu": rows[0]["cpu_info"] if rows else None,
            "logical_cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "devices": {"prior": prior.model_dump(mode="json"), "calibrated": calibrated.model_dump(mode="json")},
        "calibration": calibration,
        "own_calibrations": own,
        "builds": {
            b: {"llama_bench": str(bench_binary(b, args.isa_dir)), "flags": sorted(BUILDS[b][1] or [])}
            for b in builds
        },
        "settings": {
            "threads": threads,
            "plan": {b: {"threads": t, "prompts": p, "gens": g} for b, (t, p, g) in plan.items()},
            "reps": args.reps,
            "rounds": args.rounds,
            "serve_prompt": args.serve_prompt,
            "serve_gen": args.serve_gen,
            "serve_rounds": args.serve_rounds,
            "serve_repeats": args.serve_repeats,
        },
        "rows": rows,
        "summary": summary,
        "served": served,
        "runtime_s": round(time.monotonic() - started, 1),
    }
    save(doc, args.out)


def save(doc: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    plot(doc["rows"], out.with_suffix(".png"))
    plot_prompts(doc["rows"], out.with_name(out.stem + "_prompts.png"))
    console.print(f"saved {out} and its plots")


def repredict(path: Path, out: Path) -> None:
    """Recompute a results file's predictions with the sizing model as it is now: the prior from
    the recorded detected CPU, the calibration refitted (`node_calibration.fit`) to the measurements
    its `wave fleet detect --calibrate` stored, every llama-bench row and served point re-predicted."""
    from waveidp.bench.node_calibration import fit, measured_from_points
    from waveidp.fleet.models import CalibrationPoint

    doc = json.loads(path.read_text())
    prior = Hardware.model_validate({**doc["devices"]["prior"], "calibration": {}})
    calibrated = prior
    if doc.get("calibration"):
        points = [CalibrationPoint.model_validate(p) for p in doc["calibration"]["measurements"]]
        tests = measured_from_points(points)
        fitted = fit(prior, tests, efficiency_of(prior, "llamacpp"))
        names = doc["calibration"]["factors"]
        factors = {k: float(getattr(fitted, k)) for k in names}
        calibrated = prior.model_copy(update={"calibration": {"llamacpp": factors}})
        doc["calibration"]["factors_refitted"] = factors
    doc["own_calibrations"] = own = own_calibrations(doc["rows"], prior)
    add_predictions(doc["rows"], prior, calibrated, own)
    doc["summary"] = summarize(doc["rows"])
    if doc.get("served"):
        predict_served(doc["served"], {"prior": prior, "calibrated": calibrated})
    doc["devices"]["calibrated"] = calibrated.model_dump(mode="json")
    doc["repredicted"] = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    print_rows(doc["rows"])
    print_summary(doc["summary"], own)
    save(doc, out)


def print_summary(summary: dict[str, Any], own: dict[str, dict[str, Any]]) -> None:
    for name, v in summary.items():
        console.print(
            f"{name:24s} n={v['n']:3d}  median error prior {v['median_error_prior']:.0%} "
            f"(worst {v['worst_ratio_prior']:.2f}x), calibrated {v['median_error_calibrated']:.0%} "
            f"(worst {v['worst_ratio_calibrated']:.2f}x)",
            highlight=False,
        )
    for build, c in own.items():
        console.print(
            f"{build}: its own quick calibration {c['factors']}, on its tests {c['error_before']} -> "
            f"{c['error_after']}",
            highlight=False,
        )


def print_rows(rows: list[dict[str, Any]]) -> None:
    table = Table(title="llama-bench vs sizing (ratio = predicted / measured)", title_justify="left")
    for col in ("build", "model", "test", "t", "measured", "prior", "ratio", "calibrated", "ratio", "kernel"):
        table.add_column(col, justify="left" if col in ("build", "model", "test", "kernel") else "right")
    for r in rows:
        table.add_row(
            r["build"],
            r["model"],
            r["test"],
            str(r["threads"]),
            f"{r['measured_tokens_per_s']:.1f}",
            f"{r['predicted_prior']:.1f}",
            f"{r['ratio_prior']:.2f}",
            f"{r['predicted_calibrated']:.1f}",
            f"{r['ratio_calibrated']:.2f}",
            r["kernel"],
        )
    console.print(table)


def serve(models: list[Model], described: dict[str, Hardware], args: Any) -> list[dict[str, Any]]:
    points = [
        (m, cid, c) for m, cid in zip(models, ("smollm2-135m", "gemma-3-270m"), strict=True) for c in (1, 2)
    ]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {(m.label, c): [] for m, _, c in points}
    with Progress(console=console) as progress:
        task = progress.add_task(
            "llama-server, 1 thread: wave bench, 1 and 2 clients", total=args.serve_repeats * len(points)
        )
        # the repeats go round all points in turn, so a neighbour's burst of load hits different points
        for _ in range(args.serve_repeats):
            for m, cid, c in points:
                runs[(m.label, c)].append(
                    wave_bench_served(
                        m.path, cid, "cpu-generic", args.serve_prompt, args.serve_gen, c, args.serve_rounds
                    )
                )
                progress.advance(task)
    out = []
    for (label, c), tries in runs.items():
        # the run with the best throughput: neighbours on this shared machine only ever slow a run down
        best = max(tries, key=lambda t: t["measured"]["output_tokens_per_s"])
        out.append(
            {
                "model": label,
                "concurrency": c,
                "measured": best["measured"],
                "best_run": best,
                "all_runs_measured": [t["measured"] for t in tries],
            }
        )
    predict_served(out, described)
    table = Table(
        title=f"llama-server, 1 thread, prompt {args.serve_prompt} / output {args.serve_gen}: "
        "ratio predicted / measured",
        title_justify="left",
    )
    for col in (
        "model",
        "conc",
        "TTFT ms",
        "prior",
        "calibrated",
        "ITL ms",
        "prior",
        "calibrated",
        "tok/s",
        "prior",
        "calibrated",
    ):
        table.add_column(col, justify="left" if col == "model" else "right")
    for row in out:
        cells = [row["model"], str(row["concurrency"])]
        for k in SERVED_KEYS:
            cells += [
                f"{row['measured'][k]:.1f}",
                f"{row['ratio']['prior'][k]:.2f}",
                f"{row['ratio']['calibrated'][k]:.2f}",
            ]
        table.add_row(*cells)
    console.print(table)
    return out


def predict_served(served: list[dict[str, Any]], described: dict[str, Hardware]) -> None:
    """Each served point's prediction: its wave bench run replayed (`predict_runs`: requests
    planned, warm-up, the scheduler simulation) on each description of this CPU, for the GGUF file
    llama-server ran (as `wave size -m FILE` describes it: its tensor types pick the kernels; the
    catalog id wave bench records would not say that Gemma's file is mostly q5_0 and q8_0)."""
    from waveidp.bench.predict import predict_runs

    for row in served:
        report = BenchReport.model_validate(row["best_run"]["report"])
        command = shlex.split(row["best_run"]["server_command"])
        file = row["best_run"].get("file") or command[command.index("-m") + 1]
        if report.deployment is not None and Path(file).exists():
            record = report.deployment.model_copy(update={"model": file})
            report = report.model_copy(update={"deployment": record})
        row["predicted_for"] = file if Path(file).exists() else report.deployment and report.deployment.model
        got = row["measured"]
        row["predicted"], row["ratio"] = {}, {}
        for name, hw in described.items():
            (pred,) = (p.model_dump() for p in predict_runs(report, hardware=[hw]))
            row["predicted"][name] = {k: pred[k]["predicted"] for k in SERVED_KEYS}
            row["ratio"][name] = {k: pred[k]["predicted"] / got[k] for k in SERVED_KEYS}


# ---- plots ---------------------------------------------------------------------------------------------


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    colors = dict(zip(BUILDS, ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=True))
    for ax, kind, title in ((axes[0], "pp", "prompt processing"), (axes[1], "tg", "token generation")):
        for build, color in colors.items():
            rs = [r for r in rows if r["build"] == build and (r["n_prompt"] > 0) == (kind == "pp")]
            if not rs:
                continue
            x = [r["measured_tokens_per_s"] for r in rs]
            ax.scatter(
                x, [r["ratio_prior"] for r in rs], s=14, facecolors="none", edgecolors=color, alpha=0.6
            )
            ax.scatter(x, [r["ratio_calibrated"] for r in rs], s=14, color=color, label=build)
        ax.axhspan(0.9, 1.1, color="grey", alpha=0.15)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("measured tokens/s (llama-bench, log)")
        ax.set_title(f"{title}: hollow = prior, filled = calibrated")
    axes[0].set_ylabel("predicted / measured (log)")
    axes[1].legend(title="llama.cpp build", fontsize=8)
    fig.suptitle(
        "wave sizing vs llama-bench on this CPU (threads 1-2; grey: within 10%; calibrated: the native build"
        " by --calibrate, a restricted build by its own quick tests)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_prompts(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    builds = {r["build"] for r in rows}
    build = "native" if "native" in builds else min(builds, default="")
    picked = [r for r in rows if r["build"] == build and r["threads"] == 1 and r["n_prompt"] > 0]
    for i, label in enumerate(sorted({r["model"] for r in picked})):
        rs = sorted((r for r in picked if r["model"] == label), key=lambda r: r["n_prompt"])
        if len(rs) < 3:
            continue
        color = plt.get_cmap("tab10")(i % 10)
        n = [r["n_prompt"] for r in rs]
        ax.plot(n, [r["measured_tokens_per_s"] for r in rs], "o", color=color, label=label)
        ax.plot(n, [r["predicted_calibrated"] for r in rs], "-", color=color, lw=1)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("prompt tokens (llama-bench -p)")
    ax.set_ylabel("prompt tokens/s, 1 thread (log)")
    ax.set_title(f"{build} build, prompt rate vs prompt length: dots measured, lines predicted (calibrated)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
