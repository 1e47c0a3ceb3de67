"""How late may a second request reach an idle llama-server and still share the first one's batch?

llama-server's main loop takes every queued task (slot selection, prompt-cache lookup, sampler set-up)
before it builds a batch, so a request that arrives while the first one is being launched joins its
prompt batch; one that arrives after the batch started waits for it. On the CPU of
benchmarks/sizing_cpu.py two clients of `wave bench -c 2` sent 1 ms apart always shared the first
batch (TTFT 1.40 s each, twice the one-client 0.70 s), which the scheduler model
(`waveidp.sizing._schedule`) did not reproduce.

The real llama-server (SmolLM2-135M, 1 thread, -np 2) gets pairs of 128-token prompts (token ids, no
prompt cache), the second sent `gap` ms after the first; a pair shared a batch when the first
request's TTFT is at least 1.5x that of a request alone. Prints each gap's outcome and saves JSON.

    flock /tmp/wave-bench.lock nice -n 10 .venv/bin/python benchmarks/investigations/cpu/batch_join.py
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from local_llama import llama_server

from waveidp.engines.llamacpp import LlamaServerSpec
from waveidp.engines.local_files import embedded_model_path, llama_tool
from waveidp.loopback import free_port

ROOT = Path(__file__).resolve().parents[3]
PROMPT = 128


def first_token_s(url: str, seed: int, out: dict[str, float], key: str) -> None:
    """Send a `PROMPT`-token prompt (ids from `seed`, so no two share a prefix) and record when it
    was sent and when its first token came."""
    tokens = [1000 + (seed * 7919 + i * 104729) % 40000 for i in range(PROMPT)]
    body = {"prompt": tokens, "n_predict": 2, "stream": True, "cache_prompt": False, "temperature": 0}
    out[key + "_sent"] = time.perf_counter()
    with httpx.stream("POST", url + "/completion", json=body, timeout=60) as r:
        lines = r.iter_lines()
        for line in lines:
            if line.startswith("data:"):
                out[key + "_first"] = time.perf_counter()
                break
        for _ in lines:
            pass


def pair(url: str, gap_s: float, seed: int) -> dict[str, float]:
    out: dict[str, float] = {}
    a = threading.Thread(target=first_token_s, args=(url, seed, out, "a"))
    b = threading.Thread(target=first_token_s, args=(url, seed + 1, out, "b"))
    a.start()
    time.sleep(gap_s)
    b.start()
    a.join()
    b.join()
    return {
        "gap_ms": (out["b_sent"] - out["a_sent"]) * 1000,
        "ttft_a_ms": (out["a_first"] - out["a_sent"]) * 1000,
        "ttft_b_ms": (out["b_first"] - out["b_sent"]) * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaps-ms", default="0,0.5,1,2,4,8,16")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cpu/batch_join.json")
    args = ap.parse_args()
    model = embedded_model_path()
    spec = LlamaServerSpec(
        binary=llama_tool("llama-server"),
        model=model,
        port=free_port(),
        alias=model.stem,
        threads=1,
        parallel=2,
        context=2 * (PROMPT + 64),
        embeddings=False,
    )
    rows = []
    with llama_server(spec) as (url, command):
        seed = 0
        alone = []
        for _ in range(3):
            out: dict[str, float] = {}
            first_token_s(url, seed := seed + 2, out, "a")
            alone.append((out["a_first"] - out["a_sent"]) * 1000)
        single = statistics.median(alone)
        for _ in range(args.reps):
            for gap in (float(g) for g in args.gaps_ms.split(",")):
                r = pair(url, gap / 1000, seed := seed + 2)
                r["shared"] = r["ttft_a_ms"] >= 1.5 * single
                rows.append(r)
                print(
                    f"gap {r['gap_ms']:6.2f} ms  TTFT first {r['ttft_a_ms']:7.1f}  second "
                    f"{r['ttft_b_ms']:7.1f}  (alone {single:.1f})  {'shared' if r['shared'] else 'apart'}"
                )
    joined = [r["gap_ms"] for r in rows if r["shared"]]
    apart = [r["gap_ms"] for r in rows if not r["shared"]]
    doc = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "server_command": command,
        "alone_ttft_ms": alone,
        "rows": rows,
        "largest_shared_gap_ms": max(joined, default=None),
        "smallest_apart_gap_ms": min(apart, default=None),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"shared up to {doc['largest_shared_gap_ms']} ms; apart from {doc['smallest_apart_gap_ms']} ms")


if __name__ == "__main__":
    main()
