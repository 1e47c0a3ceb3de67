"""Does `wave bench` measure what the server did? Checked against `wave emulate`, whose timing is exact.

For each load point a fresh `wave emulate` (fixed step timing) runs in its own process and
`wave bench` (the real CLI, its own process) drives it. The emulator records, on CLOCK_MONOTONIC,
when every request arrived and when its first and last tokens left; that is the truth the
client's TTFT and ITL are compared with (means over the same requests). Client lag (actual send -
scheduled send) and event-loop delay show whether the client itself kept up. Where AIPerf
installs (pip, into a venv in --work-dir), it measures the same emulator for comparison.

    .venv/bin/python benchmarks/bench_fidelity.py            # ~2 minutes, writes the JSON below
    .venv/bin/python benchmarks/bench_fidelity.py --quick    # smaller, for a smoke check
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from waveidp.bench.report import BenchReport, LoadPointResult
from waveidp.loopback import free_port, wait_http

REPO = Path(__file__).resolve().parent.parent
WAVE = [sys.executable, "-m", "waveidp"]
console = Console()

# (name, emulator timing, bench load) — timings resemble an 8B model on one consumer GPU for the
# accuracy points; the 256-stream point uses a short prefill so that 256 streams stay busy.
POINTS: list[dict[str, Any]] = [
    {"name": "c1", "step_ms": 20, "prefill_ms": 50, "concurrency": 1, "requests": 24, "skip": 0,
     "output": 32, "input": 128},
    {"name": "c64", "step_ms": 20, "prefill_ms": 50, "concurrency": 64, "requests": 192, "skip": 64,
     "output": 32, "input": 128},
    {"name": "c256", "step_ms": 25, "prefill_ms": 2, "concurrency": 256, "requests": 1024, "skip": 256,
     "output": 32, "input": 32, "ramp": 1.0},
    {"name": "rate200", "step_ms": 25, "prefill_ms": 2, "rate": 200, "requests": 800, "skip": 100,
     "output": 32, "input": 32},
]  # fmt: skip


@contextlib.contextmanager
def emulator(point: dict[str, Any], log: Path) -> Iterator[str]:
    port = free_port()
    cmd = [
        *WAVE,
        "emulate",
        "--model",
        "fidelity",
        "--step-ms",
        str(point["step_ms"]),
        "--prefill-ms",
        str(point["prefill_ms"]),
        "--max-batch",
        "1024",
        "--port",
        str(port),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(url + "/health", proc, timeout=30, log=log)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)


def breakdown(url: str, run: LoadPointResult) -> dict[str, float]:
    """Where the client's extra TTFT goes, per request, at concurrency 1 (requests pair up in order):
    client send -> server handler, token emission -> socket write, socket write -> client read."""
    trace = sorted(
        httpx.get(url + "/emulator/trace", timeout=30).json()["requests"], key=lambda r: r["received"]
    )
    t0 = run.clock_origin_s or 0.0
    rows = sorted(run.requests, key=lambda r: r.sent_s or 0.0)
    parts: dict[str, list[float]] = {
        "client_lag": [],
        "send_to_server": [],
        "emit_to_write": [],
        "write_to_read": [],
    }
    for c, s in zip(rows, trace, strict=True):
        parts["client_lag"].append(c.client_lag_ms or 0.0)
        parts["send_to_server"].append((s["received"] - (t0 + (c.sent_s or 0.0))) * 1000)
        parts["emit_to_write"].append((s["first_write"] - s["first_token"]) * 1000)
        parts["write_to_read"].append((t0 + (c.first_token_s or 0.0) - s["first_write"]) * 1000)
    return {k + "_ms_mean": sum(v) / len(v) for k, v in parts.items()}


def server_truth(url: str, skip: int) -> dict[str, Any]:
    """Means over the emulator's own record, leaving out the first `skip` arrivals (the client's
    per-point warm-up wave). `engine` times are token emission; `wire` times are socket writes."""
    trace = httpx.get(url + "/emulator/trace", timeout=30).json()
    rows = sorted(
        (r for r in trace["requests"] if r["finish_reason"] != "cancelled"), key=lambda r: r["received"]
    )
    rows = rows[skip:]

    def mean(values: list[float]) -> float:
        return 1000 * sum(values) / len(values)

    many = [r for r in rows if r["output_tokens"] > 1]
    st = trace["stats"]
    return {
        "requests": len(rows),
        "ttft_ms_mean": mean([r["first_token"] - r["received"] for r in rows]),
        "itl_ms_mean": mean([(r["last_token"] - r["first_token"]) / (r["output_tokens"] - 1) for r in many]),
        "ttft_wire_ms_mean": mean([r["first_write"] - r["received"] for r in rows]),
        "itl_wire_ms_mean": mean(
            [(r["last_write"] - r["first_write"]) / (r["output_tokens"] - 1) for r in many]
        ),
        "steps": st["steps"],
        "step_slip_ms_mean": 1000 * st["slip_s_total"] / max(st["steps"], 1),
        "step_slip_ms_max": 1000 * st["slip_s_max"],
        "rebases": st["rebases"],
    }


def run_wave_bench(url: str, point: dict[str, Any], out: Path) -> tuple[list[str], LoadPointResult]:
    load = ["-c", str(point["concurrency"])] if "concurrency" in point else ["-r", str(point["rate"])]
    cmd = [
        "wave",
        "bench",
        "--url",
        url,
        "--model",
        "fidelity",
        *load,
        "-n",
        str(point["requests"]),
        "--duration",
        "120",
        "--input-tokens",
        str(point["input"]),
        "--output-tokens",
        str(point["output"]),
        "--warmup",
        "0",
        "--point-warmup",
        str(point["skip"]),
        "--ramp",
        str(point.get("ramp", 0)),
        "--no-plots",
        "--no-chunks",
        "--seed",
        "1",
        "--out",
        str(out),
    ]
    subprocess.run([*WAVE, *cmd[1:]], check=True, capture_output=True, timeout=300)
    return cmd, BenchReport.load(out).runs[0]


def aiperf_bin(work: Path, allow_install: bool) -> Path | None:
    venv = work / "aiperf-venv"
    exe = venv / "bin" / "aiperf"
    if exe.exists() or not allow_install:
        return exe if exe.exists() else None
    console.print("installing aiperf into", venv, "(pip; may take minutes)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "aiperf"], capture_output=True, text=True)
    if r.returncode != 0 or not exe.exists():
        console.print(f"[yellow]aiperf did not install: {r.stderr.strip().splitlines()[-1:]}")
        return None
    return exe


_MAKE_TOKENIZER = """
import json, sys
from pathlib import Path
import gguf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
reader = gguf.GGUFReader(sys.argv[1])
def strings(name):
    f = reader.fields[name]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
tokens = strings("tokenizer.ggml.tokens")
merges = [tuple(m.split(" ", 1)) for m in strings("tokenizer.ggml.merges")]
tok = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
out = Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
tok.save(str(out / "tokenizer.json"))
(out / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
"""


def aiperf_tokenizer(exe: Path, work: Path) -> Path:
    """AIPerf needs a Hugging Face tokenizer and may not download one: build SmolLM2's from its GGUF."""
    out = work / "smollm2-tokenizer"
    if not (out / "tokenizer.json").exists():
        from waveidp.engines.local_files import embedded_model_path

        py = exe.parent / "python"
        subprocess.run([str(exe.parent / "pip"), "install", "-q", "gguf"], check=True, capture_output=True)
        subprocess.run(
            [str(py), "-c", _MAKE_TOKENIZER, str(embedded_model_path()), str(out)],
            check=True,
            capture_output=True,
        )
    return out


def run_aiperf(exe: Path, url: str, point: dict[str, Any], out: Path, tokenizer: Path) -> dict[str, Any]:
    """AIPerf on the same emulator and load; returns its TTFT/ITL means (ms) or the reason it failed."""
    cmd = [
        str(exe),
        "profile",
        "--model",
        "fidelity",
        "--url",
        url,
        "--endpoint-type",
        "chat",
        "--streaming",
        "--concurrency",
        str(point["concurrency"]),
        "--request-count",
        str(point["requests"]),
        "--isl",
        str(point["input"]),
        "--osl",
        str(point["output"]),
        "--extra-inputs",
        "ignore_eos:true",
        "--extra-inputs",
        f"min_tokens:{point['output']}",
        "--tokenizer",
        str(tokenizer),
        "--use-server-token-count",
        "--artifact-dir",
        str(out),
        "--no-auto-plot",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=out.parent)
    export = out / "profile_export_aiperf.json"
    if r.returncode != 0 or not export.exists():
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        return {"command": shlex.join(cmd), "error": f"exit {r.returncode}: {' | '.join(tail)}"}
    data = json.loads(export.read_text())
    return {
        "command": shlex.join(cmd),
        "aiperf_version": data.get("aiperf_version"),
        "ttft_ms_mean": data["time_to_first_token"]["avg"],
        "itl_ms_mean": data["inter_token_latency"]["avg"],
        "completed": data.get("request_count", {}).get("avg"),
    }


def pct(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else (a - b) / b * 100


def measure(point: dict[str, Any], work: Path, exe: Path | None) -> dict[str, Any]:
    name = point["name"]
    with emulator(point, work / f"emulate-{name}.log") as url:
        bench_out = work / f"wave-{name}"
        shutil.rmtree(bench_out, ignore_errors=True)
        cmd, run = run_wave_bench(url, point, bench_out)
        truth = server_truth(url, point["skip"])
        if point.get("concurrency") == 1:
            truth["ttft_breakdown"] = breakdown(url, run)
    s = run.summary
    all_lag = [r.client_lag_ms for r in run.requests if r.client_lag_ms is not None]
    wave = {
        "completed": s.completed, "errors": s.errors,
        "ttft_ms_mean": s.ttft_ms.mean, "itl_ms_mean": s.itl_ms.mean,
        "ttft_error_pct": pct(s.ttft_ms.mean, truth["ttft_ms_mean"]),
        "itl_error_pct": pct(s.itl_ms.mean, truth["itl_ms_mean"]),
        "ttft_error_vs_wire_pct": pct(s.ttft_ms.mean, truth["ttft_wire_ms_mean"]),
        "itl_error_vs_wire_pct": pct(s.itl_ms.mean, truth["itl_wire_ms_mean"]),
        "client_lag_ms": s.client_lag_ms.model_dump(),
        "client_lag_ms_p99_including_warmup_wave": sorted(all_lag)[int(0.99 * (len(all_lag) - 1))],
        "loop_delay_ms": s.loop_delay_ms.model_dump(), "output_tokens_per_s": s.output_tokens_per_s,
    }  # fmt: skip
    row: dict[str, Any] = {
        "point": name, "emulator": {"step_ms": point["step_ms"], "prefill_ms": point["prefill_ms"]},
        "load": {k: point[k] for k in ("concurrency", "rate", "requests", "skip", "input", "output", "ramp")
                 if k in point},
        "wave_bench_command": shlex.join(cmd), "truth": truth, "wave": wave,
    }  # fmt: skip
    if exe is not None and "concurrency" in point and point["concurrency"] <= 64:
        with emulator(point, work / f"emulate-{name}-aiperf.log") as url:
            ap_out = work / f"aiperf-{name}"
            shutil.rmtree(ap_out, ignore_errors=True)
            ap = run_aiperf(exe, url, point, ap_out, aiperf_tokenizer(exe, work))
            ap["truth"] = server_truth(url, 0)  # AIPerf measures every request it sends here
        ap["ttft_error_pct"] = pct(ap.get("ttft_ms_mean"), ap["truth"]["ttft_ms_mean"])
        ap["itl_error_pct"] = pct(ap.get("itl_ms_mean"), ap["truth"]["itl_ms_mean"])
        row["aiperf"] = ap
    console.print(
        f"{name}: wave TTFT {wave['ttft_ms_mean']:.2f} ms vs server {truth['ttft_ms_mean']:.2f} ms "
        f"(wire {truth['ttft_wire_ms_mean']:.2f}), "
        f"ITL {wave['itl_ms_mean']:.3f} vs {truth['itl_ms_mean']:.3f} ms, "
        f"lag p99 {s.client_lag_ms.p99 or 0:.3f} ms"
    )
    return row


def report(results: list[dict[str, Any]]) -> dict[str, bool]:
    accuracy = [r for r in results if r["point"] in ("c1", "c64")]
    checks = {
        "ttft_itl_within_2pct_at_c1_c64": all(
            abs(r["wave"]["ttft_error_pct"]) < 2 and abs(r["wave"]["itl_error_pct"]) < 2 for r in accuracy
        ),
        "client_lag_p99_under_1ms_at_256_streams": all(
            r["wave"]["client_lag_ms"]["p99"] < 1.0 for r in results if r["point"] == "c256"
        ),
    }
    table = Table(title="wave bench vs the emulator's own record (means, ms; err = wave vs engine emission)")
    heads = ("point", "engine TTFT", "wire TTFT", "wave TTFT", "err", "engine ITL", "wave ITL", "err",
             "lag p50/p99", "loop p99", "AIPerf TTFT/ITL err")  # fmt: skip
    for col in heads:
        table.add_column(col, justify="left" if col == "point" else "right")
    for r in results:
        w, t, a = r["wave"], r["truth"], r.get("aiperf")
        ap_txt = "–"
        if a and a.get("ttft_error_pct") is not None:
            ap_txt = f"{a['ttft_error_pct']:+.2f}% / {a['itl_error_pct']:+.2f}%"
        elif a:
            ap_txt = "failed"
        table.add_row(
            r["point"], f"{t['ttft_ms_mean']:.2f}", f"{t['ttft_wire_ms_mean']:.2f}",
            f"{w['ttft_ms_mean']:.2f}",
            f"{w['ttft_error_pct']:+.2f}%", f"{t['itl_ms_mean']:.3f}", f"{w['itl_ms_mean']:.3f}",
            f"{w['itl_error_pct']:+.2f}%", f"{w['client_lag_ms']['p50']:.3f}/{w['client_lag_ms']['p99']:.3f}",
            f"{w['loop_delay_ms']['p99']:.2f}", ap_txt,
        )  # fmt: skip
    console.print(table)
    for k, v in checks.items():
        console.print(f"{k}: {'PASS' if v else 'FAIL'}")
    return checks


def client_cost(streams: int = 64, tokens: int = 64, rounds: int = 3) -> dict[str, Any]:
    """CPU time per received chunk of the hot path, aiohttp (what wave bench uses) vs httpx, on the
    same emulator: `streams` concurrent SSE streams of `tokens` tokens each, best of `rounds`."""
    import asyncio

    import aiohttp

    body = {"model": "fidelity", "messages": [{"role": "user", "content": "hi"}], "max_tokens": tokens,
            "ignore_eos": True, "stream": True}  # fmt: skip

    async def with_aiohttp(url: str) -> int:
        n = 0
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:

            async def one() -> None:
                nonlocal n
                async with s.post(url + "/v1/chat/completions", json=body) as r:
                    async for line in r.content:
                        if line.startswith(b"data: {"):
                            json.loads(line[6:])
                            n += 1

            await asyncio.gather(*(one() for _ in range(streams)))
        return n

    async def with_httpx(url: str) -> int:
        n = 0
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(limits=limits, timeout=60) as c:

            async def one() -> None:
                nonlocal n
                async with c.stream("POST", url + "/v1/chat/completions", json=body) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: {"):
                            json.loads(line[6:])
                            n += 1

            await asyncio.gather(*(one() for _ in range(streams)))
        return n

    out: dict[str, Any] = {"streams": streams, "tokens": tokens}
    with emulator({"step_ms": 5, "prefill_ms": 1}, Path("/tmp/wave-bench-client-cost.log")) as url:
        for name, fn in (("aiohttp", with_aiohttp), ("httpx", with_httpx)):
            best = float("inf")
            for _ in range(rounds):
                cpu = time.process_time()
                chunks = asyncio.run(fn(url))
                best = min(best, (time.process_time() - cpu) / chunks * 1e6)
            out[f"{name}_cpu_us_per_chunk"] = best
    console.print(f"client CPU per chunk: aiohttp {out['aiohttp_cpu_us_per_chunk']:.1f} us, "
                  f"httpx {out['httpx_cpu_us_per_chunk']:.1f} us")  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests per point")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "bench_fidelity.json")
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/wave-bench-fidelity"))
    ap.add_argument("--aiperf", choices=("auto", "skip", "no-install"), default="auto")
    ap.add_argument("--only", help="comma-separated point names")
    args = ap.parse_args()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    exe = None if args.aiperf == "skip" else aiperf_bin(work, args.aiperf == "auto")
    results = []
    for point in POINTS:
        if args.only and point["name"] not in args.only.split(","):
            continue
        p = dict(point)
        if args.quick:
            p["requests"] = max(p.get("concurrency", 8), p["requests"] // 4)
        results.append(measure(p, work, exe))
    checks = report(results)
    cost = client_cost() if not args.only else None
    doc = {
        "command": shlex.join(["python", "benchmarks/bench_fidelity.py", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "checks": checks,
        "client_hot_path": cost,
        "points": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
