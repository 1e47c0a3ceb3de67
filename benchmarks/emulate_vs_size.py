"""Does `wave emulate --engine llamacpp` serve what `wave size` predicts? Measured through HTTP.

Both run one model of llama-server's scheduler (`waveidp.sizing.ServerLoop`). For each repeat and
concurrency c = 1, 4, 8 a fresh `wave emulate` (Llama-3.1-8B q4_k_m on an RTX 5070 Ti,
`--parallel 8`, the sizing model's timing, real time) is measured by the real `wave bench -c C
--predict` (512-token prompts, 64 output tokens); the prediction is the replay of the recorded run
(`predict_runs`, as `--predict` prints it). A fresh server per point, as on the H100: which slots
earlier points used decides which slots a burst gets, and non-consecutive slots cost llama-server
(and so the emulator) an extra pass over the weights per decode step, which the replay of one
point cannot know. Printed and saved: TTFT p50, ITL p50 and output tok/s, measured and
predicted, per concurrency and repeat; the load average before each repeat (the emulator and the
client share this machine's cores, so client and scheduling jitter show up as error).

    .venv/bin/python benchmarks/emulate_vs_size.py            # 3 repeats, ~2 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from local_llama import free_port  # noqa: E402

WAVE = [sys.executable, "-m", "waveidp"]
DEPLOY = ["--model", "llama-3.1-8b", "--quant", "q4_k_m", "--device", "rtx-5070-ti", "--engine", "llamacpp"]
KEYS = ("ttft_ms", "itl_ms", "output_tokens_per_s")


def one_run(work: Path, repeat: int, conc: int) -> tuple[list[dict[str, Any]], list[str]]:
    from waveidp.bench.predict import predict_runs
    from waveidp.bench.report import BenchReport

    port = free_port()
    emulate = [*WAVE, "emulate", *DEPLOY, "--parallel", "8", "--served-name", "llama", "--port", str(port)]
    out = work / f"repeat{repeat}-c{conc}"
    bench = [*WAVE, "bench", "--url", f"http://127.0.0.1:{port}", "--model", "llama", "-c", str(conc),
             "-n", str(3 * conc), "--duration", "60", "--input-tokens", "512", "--output-tokens", "64",
             "--predict", "--model-id", "llama-3.1-8b", "--quant", "q4_k_m", "--device", "rtx-5070-ti",
             "--engine", "llamacpp", "--parallel", "8", "--no-plots", "--out", str(out)]  # fmt: skip
    with (work / f"emulate{repeat}-c{conc}.log").open("wb") as log:
        proc = subprocess.Popen(emulate, stdout=log, stderr=subprocess.STDOUT)
        try:
            import httpx

            for _ in range(200):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            subprocess.run(bench, check=True, capture_output=True, text=True, timeout=300)
        finally:
            proc.terminate()
            proc.wait(10)
    report = BenchReport.load(out / "results.json")
    return [r.model_dump() for r in predict_runs(report)], [shlex.join(emulate[2:]), shlex.join(bench[2:])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/emulate_vs_size.json")
    args = ap.parse_args()
    os.environ["WAVE_HOME"] = tempfile.mkdtemp(prefix="wave-emulate-vs-size-")
    work = Path(tempfile.mkdtemp(prefix="emulate-vs-size-"))
    rows: list[dict[str, Any]] = []
    commands: list[str] = []
    for repeat in range(args.repeats):
        load = os.getloadavg()[0]
        runs: list[dict[str, Any]] = []
        for conc in (1, 4, 8):
            point, cmds = one_run(work, repeat, conc)
            runs += point
            commands += cmds if repeat == 0 else []
        for r in runs:
            row = {"repeat": repeat, "load_average": round(load, 2), "concurrency": r["concurrency"]}
            row |= {k: r[k] for k in KEYS}
            rows.append(row)
            print(f"repeat {repeat} (load {load:.1f}) c={r['concurrency']}: "
                  + ", ".join(f"{k} {r[k]['measured']:.1f} measured / {r[k]['predicted']:.1f} predicted "
                              f"({r[k]['error_pct']:+.1f}%)" for k in KEYS))  # fmt: skip
    summary = {
        f"c{c}": {
            k: round(statistics.median(abs(r[k]["error_pct"]) for r in rows if r["concurrency"] == c), 2)
            for k in KEYS
        }
        for c in (1, 4, 8)
    }
    print("median |error| over the repeats, per concurrency:", json.dumps(summary))
    doc = {
        "command": "python benchmarks/emulate_vs_size.py " + " ".join(sys.argv[1:]),
        "runs": commands,
        "median_abs_error_pct": summary,
        "rows": rows,
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
