"""What one routing decision costs the gateway's event loop: `predicted-latency`'s ranking, the
per-request learning hooks, and the decision trace when someone reads it, against the code before
the learning router (`--baseline-rev`, run from an exported copy in a subprocess) in the same run.

    flock /tmp/wave-bench.lock .venv/bin/python benchmarks/routing_decision.py     # ~1 minute

The fleet is benchmarks/routing.py's (RTX 5070 Ti vLLM 16 slots, i9-9980HK and Jetson Orin Nano
llama.cpp 2 slots each, llama-3.2-3b, their sizing priors, the strict SLO), loaded as at ~8
requests/s: 8 requests streaming on the GPU, 2 on the Jetson, 1 on the CPU. Each figure is the
median of `--repeats` rounds of `--n` calls, in microseconds per call; rounds of the two trees
alternate so the machine's noise hits both alike.

- rank: `policy.rank(candidates, request, now)` for one request.
- hooks: what the gateway's request path calls on the backend for one streamed request
  (begin, first token, the progress reports the new code adds, end), on a backend the policy
  ranks; hooks_alone: the same on a backend never ranked against another (the only one of its
  model, where the new code learns nothing).
- trace: `Ranked.trace()` plus `to_dict()` and `orjson.dumps` (new code only; paid only when a
  log at debug level or a console reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
FLEET = {
    "gpu": ("rtx-5070-ti", "vllm", "bf16", 16, 8),
    "cpu": ("i9-9980hk", "llamacpp", "q4_k_m", 2, 1),
    "edge": ("jetson-orin-nano-super", "llamacpp", "q4_k_m", 2, 2),
}


def measure(n: int) -> dict[str, float]:
    """One round in this process, with whichever `waveidp` is first on the import path."""
    import orjson

    from waveidp.engines import adapter
    from waveidp.fleet.models import Slo
    from waveidp.gateway.backends import BackendState
    from waveidp.gateway.prediction import from_sizing
    from waveidp.gateway.request_info import parse_request
    from waveidp.gateway.routing import make_policy

    def request(i: int):  # type: ignore[no-untyped-def]
        body = {
            "model": "m",
            "messages": [{"role": "user", "content": f"q{i} " + "w " * 200}],
            "max_tokens": 64,
        }
        return parse_request("chat", orjson.dumps(body))

    fleet = []
    for name, (hw, engine, quant, slots, busy) in FLEET.items():
        pred = from_sizing("llama-3.2-3b", quant, [hw], engine, slots)
        b = BackendState(
            name, f"http://{name}", adapter(engine), {"m"}, max_concurrency=slots, predictions={"m": pred}
        )
        for i in range(busy):
            b.first_token(b.begin(request(i)), 0.05)
        fleet.append(b)
    policy = make_policy("predicted-latency", affinity=True, slo=Slo(ttft_s=1.0, itl_s=0.025))
    infos = [request(i) for i in range(64)]
    now = time.monotonic()
    out: dict[str, float] = {}

    t0 = time.perf_counter()
    for i in range(n):
        ranked = policy.rank(fleet, infos[i % 64], now + i * 1e-4)
    out["rank_us"] = (time.perf_counter() - t0) / n * 1e6

    def hooks(b: BackendState) -> float:
        progress = getattr(b, "progress", None)
        t0 = time.perf_counter()
        for i in range(n):
            work = b.begin(infos[i % 64])
            b.first_token(work, 0.03)
            if progress is not None:  # reports at 11 ms a token after the first: both teach
                progress(work, 8, work.started + 0.03 + 7 * 0.011)
                progress(work, 64, work.started + 0.03 + 63 * 0.011)
            b.end(work)
        return (time.perf_counter() - t0) / n * 1e6

    out["hooks_us"] = hooks(fleet[0])
    hw, engine, quant, slots, _ = FLEET["gpu"]
    alone = BackendState(
        "alone",
        "http://alone",
        adapter(engine),
        {"m"},
        max_concurrency=slots,
        predictions={"m": from_sizing("llama-3.2-3b", quant, [hw], engine, slots)},
    )
    out["hooks_alone_us"] = hooks(alone)  # never ranked against another backend

    if hasattr(ranked, "trace"):
        t0 = time.perf_counter()
        for i in range(n):
            ranked = policy.rank(fleet, infos[i % 64], now + i * 1e-4)
            trace = ranked.trace()
            assert trace is not None
            orjson.dumps(trace.to_dict())
        out["rank_and_trace_us"] = (time.perf_counter() - t0) / n * 1e6
        out["trace_us"] = out["rank_and_trace_us"] - out["rank_us"]
        out["trace_bytes"] = len(orjson.dumps(trace.to_dict()))
    return out


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--baseline-rev", help="default: where this branch left main")
    ap.add_argument("--round", action="store_true", help=argparse.SUPPRESS)  # one round, JSON on stdout
    ap.add_argument("--out", type=Path, default=RESULTS / "routing_decision.json")
    args = ap.parse_args()
    if args.round:
        print(json.dumps(measure(args.n)))
        return
    rev = git("rev-parse", args.baseline_rev or git("merge-base", "HEAD", "main"))
    with tempfile.TemporaryDirectory(prefix="routing-decision-") as tmp:
        archive = subprocess.run(["git", "archive", rev, "src"], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        trees = {"new": str(REPO / "src"), "base": str(Path(tmp) / "src")}
        rounds: dict[str, list[dict[str, float]]] = {k: [] for k in trees}
        for _ in range(args.repeats):
            for name, path in trees.items():
                run = subprocess.run(
                    [sys.executable, __file__, "--round", "--n", str(args.n)],
                    env={**os.environ, "PYTHONPATH": path},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rounds[name].append(json.loads(run.stdout))
    medians = {
        name: {k: round(statistics.median(r[k] for r in rs), 2) for k in rs[0]} for name, rs in rounds.items()
    }
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()},
        "code": {"commit": git("rev-parse", "HEAD"), "baseline": rev},
        "method": __doc__.split("\n\n", 2)[2],
        "median_us": medians,
        "ratio_new_over_base": {
            k: round(medians["new"][k] / medians["base"][k], 2)
            for k in ("rank_us", "hooks_us", "hooks_alone_us")
        },
        "rounds": rounds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("median_us", "ratio_new_over_base")}, indent=1))


if __name__ == "__main__":
    main()
