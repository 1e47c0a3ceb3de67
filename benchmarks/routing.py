"""Does routing by predicted latency pay on a fleet of unequal devices? Goodput under a TTFT/ITL SLO
for `predicted-latency`, `least-outstanding` and `round-robin`, at several Poisson request rates.

    flock /tmp/wave-bench.lock .venv/bin/python benchmarks/routing.py --seeds 2   # ~9 minutes
    .venv/bin/python benchmarks/routing.py --quick                               # ~2 minutes

The fleet is a home one serving llama-3.2-3b, each engine emulated by `wave emulate` (continuous
batching, finite KV cache, step times from the sizing model, the engine's own /metrics): an
RTX 5070 Ti under vLLM (bf16), a laptop CPU (i9-9980HK) and a Jetson Orin Nano Super under
llama.cpp (q4_k_m, 2 slots each). The fleet file gives each backend its model, quant and device,
so `predicted-latency` starts from the same sizing prediction. Everything runs in real time
(`--speed 1`): the GPU's batch is capped at the 16 sequences of 4096 tokens its KV cache holds
(`wave size`), which keeps its saturation within what two shared cores can stream.
Every run starts a fresh fleet (three `wave emulate` processes and one `wave serve` with the
generated fleet file, whose routing section sets the run's policy and the strict SLO for the
model), so no backlog or learned EWMA carries over; policies run in shuffled order at each rate,
all with the same seeded arrivals (`--seeds N`: N draws per rate, each run by every policy).
Requests stream and have distinct prompts (so prefix affinity does not pin them); arrivals are
Poisson; the clock of a request starts at its scheduled arrival (no coordinated omission). TTFT
is time to the first non-empty content chunk, ITL is (E2E - TTFT) / (tokens - 1) per request.

Goodput = requests meeting every SLO / run duration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from waveidp.loopback import free_port, wait_http

REPO = Path(__file__).resolve().parent.parent
WAVE = Path(sys.executable).with_name("wave")
RESULTS = REPO / "benchmarks" / "results"
KEY = "routing-bench-key-0123456789abcdefgh"
POLICIES = ("predicted-latency", "least-outstanding", "round-robin")
MODEL = "llama-3.2-3b"
# name: (hardware catalog id, engine, quant, max batch = vLLM --max-num-seqs / llama.cpp -np)
FLEET = {
    "gpu": ("rtx-5070-ti", "vllm", "bf16", 16),
    "cpu": ("i9-9980hk", "llamacpp", "q4_k_m", 2),
    "edge": ("jetson-orin-nano-super", "llamacpp", "q4_k_m", 2),
}
# The SLO a user of the GPU would set: its ITL is 10-11 ms at any batch it runs, so 25 ms (40
# tokens/s, several times reading speed) leaves room for batching and the gateway; 1 s to the first
# token is what an interactive chat on it feels like when it is not overloaded. Lenient: what the
# Jetson meets (34-36 ms ITL) when it is not queued.
SLOS = {"strict": {"ttft_s": 1.0, "itl_s": 0.025}, "lenient": {"ttft_s": 2.0, "itl_s": 0.05}}
PROMPT_WORDS = (20, 120)
MAX_TOKENS = (32, 64, 96)
REQUEST_TIMEOUT_S = 10.0  # > the longest request that can meet the lenient SLO (2 s + 96 x 50 ms)
WORDS = ("river", "stone", "cloud", "lamp", "orbit", "fern", "quartz", "maple", "drift", "ember", "signal")
console = Console()


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def fleet_yaml(ports: dict[str, int], policy: str) -> str:
    """The fleet file of one run: the policy and the strict SLO are set for the model in its routing
    section (the baselines ignore the SLO; `wave serve --policy` would drop the per-model settings)."""
    slo = SLOS["strict"]
    lines = [
        "version: 1",
        "name: routing-bench",
        "routing:",
        "  models:",
        f"    {MODEL}: {{policy: {policy}, slo: {{ttft_s: {slo['ttft_s']}, itl_s: {slo['itl_s']}}}}}",
        "nodes:",
    ]
    for name, port in ports.items():
        hw, engine, quant, batch = FLEET[name]
        lines += [
            f"  - name: {name}-node",
            f"    devices: [{{id: {name}0, hardware: {hw}}}]",
            "    backends:",
            f"      - {{name: {name}, engine: {engine}, url: 'http://127.0.0.1:{port}', devices: [{name}0],",
            f"         models: [{{name: {MODEL}, model: {MODEL}, quant: {quant}}}],",
            f"         max_concurrency: {batch}}}",
        ]
    return "\n".join(lines) + "\n"


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def sizing_table() -> dict[str, dict]:
    """What the sizing model (the same one `wave size` prints) says each engine does per token."""
    from waveidp.sizing import Deployment, PerfModel

    out = {}
    for name, (hw, engine, quant, batch) in FLEET.items():
        extra = {"parallel": batch} if engine == "llamacpp" else {}
        perf = PerfModel(Deployment.build(MODEL, quant, [hw], engine, context=4096, **extra))
        out[name] = {
            "hardware": hw,
            "engine": engine,
            "quant": quant,
            "max_batch": batch,
            "itl_ms_batch_1": round(perf.decode_step_seconds(1, 200) * 1000, 2),
            "itl_ms_full_batch": round(perf.decode_step_seconds(batch, 200) * 1000, 2),
            "prefill_ms_100_tokens": round(perf.prefill_seconds(100) * 1000, 1),
            "kv_capacity_tokens": perf.kv_capacity_tokens(),
        }
    gpu = out["gpu"]["itl_ms_batch_1"]
    for v in out.values():
        v["itl_x_gpu_batch_1"] = round(v["itl_ms_batch_1"] / gpu, 1)
    return out


def prompt(rng: random.Random, i: int) -> str:
    n = rng.randint(*PROMPT_WORDS)
    return f"request {i}: " + " ".join(rng.choice(WORDS) for _ in range(n))


async def one(session: aiohttp.ClientSession, url: str, scheduled: float, max_tokens: int, text: str) -> dict:
    delay = scheduled - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "stream": True,
    }
    first = None
    chunks = 0
    backend = None
    try:
        async with session.post(url, json=body, headers={"authorization": f"Bearer {KEY}"}) as r:
            backend = r.headers.get("x-wave-backend")
            if r.status != 200:
                return {"ok": False, "status": r.status, "backend": backend}
            async for line in r.content:
                if not line.startswith(b"data: {"):
                    continue
                event = orjson.loads(line[6:])
                if "error" in event:
                    return {"ok": False, "status": "stream-error", "backend": backend}
                # a token is non-empty content: vLLM's first chunk (role, content "") is not one
                if any(c.get("delta", {}).get("content") for c in event.get("choices") or ()):
                    chunks += 1
                    if first is None:
                        first = time.perf_counter() - scheduled
    except (aiohttp.ClientError, TimeoutError) as exc:
        return {"ok": False, "status": type(exc).__name__, "backend": backend}
    e2e = time.perf_counter() - scheduled
    itl = (e2e - first) / (chunks - 1) if first is not None and chunks > 1 else None
    return {"ok": True, "ttft": first, "itl": itl, "e2e": e2e, "chunks": chunks, "backend": backend}


async def run_load(url: str, rate: float, seconds: float, seed: int) -> tuple[list[dict], float]:
    rng = random.Random(seed)
    t = 0.0
    arrivals = []
    while True:
        t += rng.expovariate(rate)
        if t > seconds:
            break
        arrivals.append((t, rng.choice(MAX_TOKENS), prompt(rng, len(arrivals))))
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)  # a request queued longer counts as failed
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        t0 = time.perf_counter() + 0.2
        results = await asyncio.gather(*(one(session, url, t0 + at, n, p) for at, n, p in arrivals))
    return list(results), seconds


def up(policy: str, work: Path) -> tuple[list[subprocess.Popen], str, dict[str, str]]:
    """Start the three emulated engines and one `wave serve` in front of them; wait until ready."""
    procs: list[subprocess.Popen] = []
    commands = {}
    try:
        ports = {name: free_port() for name in FLEET}
        for name, (hw, engine, quant, batch) in FLEET.items():
            cmd = [str(WAVE), "emulate", "--model", MODEL, "--quant", quant, "--device", hw]
            cmd += ["--engine", engine, "--port", str(ports[name]), "--context", "4096"]
            cmd += ["--parallel", str(batch)] if engine == "llamacpp" else ["--max-batch", str(batch)]
            procs.append(start(cmd, work / f"{name}.log"))
            commands[name] = " ".join(["wave", *cmd[1:]])
        for name, p in zip(FLEET, procs, strict=True):
            wait_http(f"http://127.0.0.1:{ports[name]}/health", p)
        cfg = work / "wave.yaml"
        cfg.write_text(fleet_yaml(ports, policy))
        port = free_port()
        p = start(
            [str(WAVE), "serve", "--config", str(cfg), "--port", str(port)],
            work / f"gateway-{policy}.log",
            env={"WAVE_API_KEY": KEY, "WAVE_HOME": str(work / "home")},
        )
        procs.append(p)
        wait_http(f"http://127.0.0.1:{port}/ready", p)
    except BaseException:
        down(procs)
        raise
    return procs, f"http://127.0.0.1:{port}", commands


def down(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)


def summarise_run(policy: str, rate: float, seed: int, results: list[dict], dur: float) -> dict:
    ok = [r for r in results if r["ok"]]
    share: dict[str, int] = {}
    failures: dict[str, int] = {}
    for r in results:
        share[r["backend"] or "-"] = share.get(r["backend"] or "-", 0) + 1
        if not r["ok"]:
            why = str(r.get("status"))
            failures[why] = failures.get(why, 0) + 1
    return {
        "policy": policy,
        "rate": rate,
        "seed": seed,
        "requests": len(results),
        "arrived_per_s": round(len(results) / dur, 3),
        "failed": len(results) - len(ok),
        "failures_by_status": failures,
        "goodput": {k: round(goodput(results, dur, slo), 3) for k, slo in SLOS.items()},
        # share of the requests that arrived that met the SLO (goodput / arrivals of this draw)
        "attainment": {
            k: round(sum(1 for r in results if meets(r, slo)) / len(results), 3) if results else None
            for k, slo in SLOS.items()
        },
        "ttft_p50_s": pct([r["ttft"] for r in ok], 50),
        "ttft_p99_s": pct([r["ttft"] for r in ok], 99),
        "itl_p50_s": pct([r["itl"] for r in ok], 50),
        "itl_p99_s": pct([r["itl"] for r in ok], 99),
        "backend_share": share,
        "good_by_backend": {
            b: sum(1 for r in results if r["backend"] == b and meets(r, SLOS["strict"])) for b in FLEET
        },
    }


def meets(r: dict, slo: dict) -> bool:
    return bool(
        r["ok"]
        and r["ttft"] is not None
        and r["ttft"] <= slo["ttft_s"]
        and (r["itl"] is None or r["itl"] <= slo["itl_s"])
    )


def goodput(results: list[dict], seconds: float, slo: dict) -> float:
    return sum(1 for r in results if meets(r, slo)) / seconds


def pct(xs: list[float], q: float) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    return round(xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))], 4) if xs else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rates", type=float, nargs="+")
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--seeds", type=int, default=1, help="arrival draws per rate (each runs every policy)")
    ap.add_argument("--policies", nargs="+", choices=POLICIES, default=list(POLICIES))
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/wave-routing-bench"))
    ap.add_argument("--out", type=Path, default=RESULTS / "routing.json")
    args = ap.parse_args()
    rates = args.rates or ([4.0, 16.0] if args.quick else [3.0, 8.0, 16.0, 24.0])
    seconds = args.seconds or (15.0 if args.quick else 12.0)
    policies = [p for p in POLICIES if p in args.policies]
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    result: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_at_start": os.getloadavg(),
        },
        "code": {
            "commit": git("rev-parse", "HEAD"),
            # `wave serve` runs from the working tree: say whether the gateway had uncommitted edits
            "gateway_uncommitted": git("status", "--porcelain", "--", "src/waveidp/gateway").splitlines(),
        },
        "model": MODEL,
        "fleet": sizing_table(),
        "slos": SLOS,
        "fleet_file_routing": {"slo": SLOS["strict"], "slo_headroom": slo_headroom()},
        "workload": {
            "prompt_words": PROMPT_WORDS,
            "max_tokens": MAX_TOKENS,
            "request_timeout_s": REQUEST_TIMEOUT_S,
        },
        "seconds_per_run": seconds,
        "seeds": args.seeds,
        "method": __doc__.split("\n\n", 2)[2],
        "runs": [],
    }
    with Progress(console=console) as progress:
        task = progress.add_task("rates x seeds x policies", total=len(rates) * args.seeds * len(policies))
        for i, rate in enumerate(rates):
            for k in range(args.seeds):
                seed = 1000 + i + 100 * k
                order = list(policies)
                random.shuffle(order)
                for policy in order:
                    # a fresh fleet and gateway per run: no backlog or learned EWMA carries over
                    procs, gateway, commands = up(policy, work)
                    try:
                        results, dur = asyncio.run(
                            run_load(gateway + "/v1/chat/completions", rate, seconds, seed=seed)
                        )
                    finally:
                        down(procs)
                    for name, cmd in commands.items():
                        result["fleet"][name]["command"] = cmd
                    result["runs"].append(summarise_run(policy, rate, seed, results, dur))
                    progress.advance(task)
    result["summary"] = summarise(result["runs"], rates, policies)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    show(result)
    plot(result, args.out.with_suffix(".png"))
    console.print(f"results: {args.out}")


def slo_headroom() -> float:
    from waveidp.gateway.routing.predicted_latency import SLO_HEADROOM

    return SLO_HEADROOM


def mean(xs: list[float]) -> float:
    return round(sum(xs) / len(xs), 3) if xs else 0.0


def summarise(runs: list[dict], rates: list[float], policies: list[str]) -> dict:
    """Per SLO and rate: mean goodput per policy over the seeds, the ratio of predicted-latency to
    the better baseline, and the ceiling of that ratio: even if every request that arrived met the
    SLO, predicted-latency's goodput could not exceed the arrival rate of the draw."""
    out: dict = {}
    for slo in SLOS:
        per_rate = {}
        for rate in rates:
            at = [r for r in runs if r["rate"] == rate]
            g = {p: mean([r["goodput"][slo] for r in at if r["policy"] == p]) for p in policies}
            arrived = mean([r["arrived_per_s"] for r in at if r["policy"] == policies[0]])
            row: dict = {**g, "arrived_per_s": arrived}
            baselines = [g[p] for p in ("least-outstanding", "round-robin") if p in g]
            if "predicted-latency" in g and baselines and max(baselines):
                best = max(baselines)
                row["ratio_vs_best_baseline"] = round(g["predicted-latency"] / best, 2)
                row["ratio_ceiling"] = round(arrived / best, 2)
                seeds = sorted({r["seed"] for r in at})
                per_seed = []
                for sd in seeds:
                    gs = {r["policy"]: r["goodput"][slo] for r in at if r["seed"] == sd}
                    b = max(gs.get("least-outstanding", 0.0), gs.get("round-robin", 0.0))
                    if b:
                        per_seed.append(round(gs["predicted-latency"] / b, 2))
                row["ratio_per_seed"] = per_seed
            per_rate[str(rate)] = row
        out[slo] = per_rate
    ratios = [v["ratio_vs_best_baseline"] for v in out["strict"].values() if v.get("ratio_vs_best_baseline")]
    out["target_1.5x_at_strict_slo"] = {
        "min_ratio": min(ratios) if ratios else None,
        "met_at_every_rate": bool(ratios) and min(ratios) >= 1.5,
        "reachable_at": [
            rate for rate, v in out["strict"].items() if v.get("ratio_ceiling") and v["ratio_ceiling"] >= 1.5
        ],
    }
    return out


def show(r: dict) -> None:
    t = Table(title="goodput (requests/s meeting the SLO)")
    cols = (
        "rate",
        "seed",
        "policy",
        "strict",
        "attained",
        "lenient",
        "ttft p50",
        "itl p50",
        "failed",
        "share",
    )
    for col in cols:
        t.add_column(col)
    for x in sorted(r["runs"], key=lambda x: (x["rate"], x["seed"], x["policy"])):
        t.add_row(
            str(x["rate"]),
            str(x["seed"]),
            x["policy"],
            str(x["goodput"]["strict"]),
            f"{x['attainment']['strict']:.0%}",
            str(x["goodput"]["lenient"]),
            str(x["ttft_p50_s"]),
            str(x["itl_p50_s"]),
            str(x["failed"]),
            json.dumps(x["backend_share"]),
        )
    console.print(t)
    console.print_json(data=r["summary"])


def plot(r: dict, path: Path) -> None:
    """Mean goodput over the seeds per policy and rate (each seed a faint dot), with the arrivals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SLOS), figsize=(11, 4))
    rates = sorted({x["rate"] for x in r["runs"]})
    for ax, slo in zip(axes, SLOS, strict=True):
        for policy in POLICIES:
            rows = [x for x in r["runs"] if x["policy"] == policy]
            if not rows:
                continue
            means = [mean([x["goodput"][slo] for x in rows if x["rate"] == q]) for q in rates]
            (line,) = ax.plot(rates, means, marker="o", label=policy)
            ax.scatter(
                [x["rate"] for x in rows],
                [x["goodput"][slo] for x in rows],
                s=10,
                alpha=0.35,
                color=line.get_color(),
            )
        arrived = [mean([x["arrived_per_s"] for x in r["runs"] if x["rate"] == q]) for q in rates]
        ax.plot(rates, arrived, ls=":", color="grey", label="arrivals (the seeded draws)")
        s = SLOS[slo]
        ax.set_title(f"{slo} SLO: TTFT <= {s['ttft_s']}s, ITL <= {s['itl_s'] * 1000:g}ms")
        ax.set_xlabel("offered load (requests/s, Poisson)")
        ax.set_ylabel(f"goodput (requests/s, mean of {r['seeds']} draws)")
        ax.legend()
    fig.suptitle(f"{MODEL}: RTX 5070 Ti (vLLM) + i9-9980HK + Jetson Orin Nano (llama.cpp), wave emulate")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
