"""Does NVIDIA AIPerf, pointed at the gateway, measure what `wave bench` measures?

`wave emulate` (fixed timing: prefill 50 ms, a 20 ms decode step) runs behind `wave serve`; the
same closed-loop load (c=4, 128-token prompts, 64 output tokens, ignore_eos) is measured through
the gateway in turns by `wave bench` and by AIPerf (`aiperf profile --endpoint-type chat
--streaming`, its own venv, a tokenizer built from SmolLM2's GGUF: no hub), several rounds each,
alternated on the same warm gateway and emulator. The check: AIPerf's TTFT and ITL means (medians
over rounds) within 3 % of `wave bench`'s. AIPerf's Responses endpoint type then runs once through
the gateway too (the emulated vLLM serves /v1/responses), to show that route works for it.

    flock /tmp/wave-bench.lock .venv/bin/python benchmarks/aiperf_gateway.py [--rounds 3] [--work-dir DIR]

Results: benchmarks/results/aiperf_gateway.json (commands, every round) and aiperf_gateway.png.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from bench_fidelity import aiperf_bin, aiperf_tokenizer
from rich.console import Console
from rich.table import Table

from waveidp.bench.report import BenchReport
from waveidp.loopback import free_port, wait_http

RESULTS = Path(__file__).parent / "results"
WAVE = [sys.executable, "-m", "waveidp"]
KEY = "aiperf-bench-key-0123456789abcdef"  # passes check_strength
MODEL = "bench-emu"
LOAD = {"concurrency": 4, "requests": 80, "input": 128, "output": 64}
TIMING = {"step_ms": 20, "prefill_ms": 50}
TOLERANCE = 0.03
console = Console()


@contextlib.contextmanager
def gateway(work: Path) -> Iterator[str]:
    """`wave emulate` and `wave serve` in front of it; the gateway's base URL."""
    emu_port, gw_port = free_port(), free_port()
    env = {**os.environ, "WAVE_HOME": str(work / "home"), "WAVE_API_KEY": KEY}
    emulate = [*WAVE, "emulate", "--model", MODEL, "--step-ms", str(TIMING["step_ms"]),
               "--prefill-ms", str(TIMING["prefill_ms"]), "--port", str(emu_port)]  # fmt: skip
    serve = [*WAVE, "serve", "--upstream", f"http://127.0.0.1:{emu_port}", "--port", str(gw_port)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, cmd, health in (("emulate", emulate, emu_port), ("serve", serve, gw_port)):
            log = work / f"{name}.log"
            procs.append(subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env))
            wait_http(f"http://127.0.0.1:{health}/" + ("health" if name == "emulate" else "ready"), procs[-1],
                      timeout=30, log=log)  # fmt: skip
        yield f"http://127.0.0.1:{gw_port}"
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=15)


def wave_bench(url: str, out: Path) -> dict[str, Any]:
    cmd = [*WAVE, "bench", "--url", url, "--model", MODEL, "--api-key", KEY,
           "-c", str(LOAD["concurrency"]), "-n", str(LOAD["requests"]),
           "--input-tokens", str(LOAD["input"]), "--output-tokens", str(LOAD["output"]), "--warmup", "4",
           "--seed", "1", "--no-plots", "--no-chunks", "--out", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    s = BenchReport.load(out).runs[0].summary
    return {
        "command": shlex.join(["wave", *cmd[3:]]),
        "ttft_ms_mean": s.ttft_ms.mean,
        "itl_ms_mean": s.itl_ms.mean,
        "completed": s.completed,
    }


def aiperf(exe: Path, url: str, out: Path, tokenizer: Path, endpoint: str = "chat") -> dict[str, Any]:
    cmd = [str(exe), "profile", "--model", MODEL, "--url", url, "--endpoint-type", endpoint, "--streaming",
           "--api-key", KEY, "--concurrency", str(LOAD["concurrency"]),
           "--request-count", str(LOAD["requests"]),
           "--warmup-request-count", "4", "--isl", str(LOAD["input"]), "--osl", str(LOAD["output"]),
           "--extra-inputs", "ignore_eos:true", "--extra-inputs", f"min_tokens:{LOAD['output']}",
           "--tokenizer", str(tokenizer), "--use-server-token-count", "--random-seed", "1",
           "--artifact-dir", str(out), "--no-auto-plot"]  # fmt: skip
    # Not HF_HUB_OFFLINE: aiperf 0.13's offline mode looks a tokenizer up as a hub repo id even when it
    # is a local folder, and fails; online, a local folder is loaded as it is (nothing is fetched).
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=out.parent)
    export = out / "profile_export_aiperf.json"
    shown = shlex.join(["aiperf", *cmd[1:]])
    if r.returncode != 0 or not export.exists():
        tail = (r.stderr or r.stdout).strip().splitlines()[-5:]
        return {"command": shown, "error": f"exit {r.returncode}: {' | '.join(tail)}"}
    data = json.loads(export.read_text())
    return {
        "command": shown,
        "aiperf_version": data.get("aiperf_version"),
        "ttft_ms_mean": data["time_to_first_token"]["avg"],
        # without token counts (AIPerf 0.13 reads a Responses stream's usage only from
        # `response.completed`; a run that stops at max_output_tokens ends in `response.incomplete`,
        # as OpenAI's does) AIPerf has no ITL, only the gap between chunks
        "itl_ms_mean": (data.get("inter_token_latency") or data["inter_chunk_latency"])["avg"],
        "itl_source": "inter_token_latency" if "inter_token_latency" in data else "inter_chunk_latency",
        "completed": data.get("request_count", {}).get("avg"),
    }


def plot(rounds: list[dict[str, Any]], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, metric, label in zip(
        axes, ("ttft_ms_mean", "itl_ms_mean"), ("TTFT mean (ms)", "ITL mean (ms)"), strict=True
    ):
        for i, tool in enumerate(("wave_bench", "aiperf")):
            values = [r[tool][metric] for r in rounds]
            ax.scatter([i] * len(values), values, label=tool.replace("_", " "), s=30)
        ax.set_xticks([0, 1], ["wave bench", "AIPerf"])
        ax.set_xlim(-0.6, 1.6)
        ax.set_title(label)
    fig.suptitle(f"through the gateway, c={LOAD['concurrency']}: every round", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/wave-aiperf-gateway"))
    args = parser.parse_args()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    exe = aiperf_bin(work, allow_install=True)
    if exe is None:
        raise SystemExit("AIPerf did not install; see the message above")
    tokenizer = aiperf_tokenizer(exe, work)
    rounds: list[dict[str, Any]] = []
    t0 = time.time()
    with gateway(work) as url:
        for i in range(args.rounds):
            row = {"round": i, "wave_bench": wave_bench(url, work / f"wave-{i}")}
            row["aiperf"] = aiperf(exe, url, work / f"aiperf-{i}", tokenizer)
            if "error" in row["aiperf"]:
                raise SystemExit(f"AIPerf failed: {row['aiperf']['error']}")
            rounds.append(row)
            console.print(f"round {i}: wave bench {row['wave_bench']}, AIPerf {row['aiperf']}")
        responses = aiperf(exe, url, work / "aiperf-responses", tokenizer, endpoint="responses")
    summary: dict[str, Any] = {}
    table = Table(
        title=f"AIPerf vs wave bench through the gateway (c={LOAD['concurrency']}, medians of {args.rounds})"
    )
    for col in ("metric", "wave bench", "AIPerf", "AIPerf / wave", "within 3 %"):
        table.add_column(col)
    for metric in ("ttft_ms_mean", "itl_ms_mean"):
        wave = statistics.median(r["wave_bench"][metric] for r in rounds)
        ap = statistics.median(r["aiperf"][metric] for r in rounds)
        ratio = ap / wave
        summary[metric] = {
            "wave_bench": wave,
            "aiperf": ap,
            "ratio": ratio,
            "within": abs(ratio - 1) <= TOLERANCE,
        }
        table.add_row(metric, f"{wave:.2f}", f"{ap:.2f}", f"{ratio:.4f}", str(summary[metric]["within"]))
    console.print(table)
    console.print(f"AIPerf --endpoint-type responses through the gateway: {responses}")
    result = {
        "command": shlex.join(["flock", "/tmp/wave-bench.lock", ".venv/bin/python", *sys.argv]),
        "load": LOAD,
        "emulator_timing": TIMING,
        "tolerance": TOLERANCE,
        "summary": summary,
        "rounds": rounds,
        "aiperf_responses_endpoint": responses,
        "load_average_start": os.getloadavg(),
        "seconds": round(time.time() - t0, 1),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "aiperf_gateway.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rounds, RESULTS / "aiperf_gateway.png")
    console.print(f"saved {RESULTS / 'aiperf_gateway.json'} and .png")
    if not all(s["within"] for s in summary.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
