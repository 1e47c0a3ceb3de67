"""Does routing by predicted latency pay on a fleet of unequal devices? Goodput under a TTFT/ITL SLO
for `predicted-latency`, `least-outstanding` and `round-robin`, at several Poisson request rates.

    .venv/bin/python benchmarks/routing.py             # ~6 minutes
    .venv/bin/python benchmarks/routing.py --quick     # ~2 minutes

The fleet is three engines emulated by tests/gateway/fake_upstream.py with speeds a GPU, a CPU and an
edge board could have for one small model (numbers below, 10x and 20x apart in ITL), each with its
own slot count, queueing beyond it and a per-running-request slowdown of decode (batching). Each
policy gets its own `wave serve` (same fleet file, `--policy`), all three in front of the same
engines; runs are interleaved by rate, policies in shuffled order. Requests stream; arrivals are
Poisson; the clock of a request starts at its scheduled arrival (no coordinated omission). TTFT is
time to the first content chunk, ITL is (E2E - TTFT) / (chunks - 1) per request.

Goodput = requests meeting every SLO / run duration, for a strict SLO that only the fast engine can
meet and a lenient one the CPU-like engine meets when not queued.
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
import httpx
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

REPO = Path(__file__).resolve().parent.parent
FAKE = REPO / "tests" / "gateway" / "fake_upstream.py"
WAVE = Path(sys.executable).with_name("wave")
RESULTS = REPO / "benchmarks" / "results"
KEY = "routing-bench-key-0123"
POLICIES = ("predicted-latency", "least-outstanding", "round-robin")
# name: (ttft s, prefill s/token, itl s, slots, decode slowdown per extra running request)
FLEET = {
    "gpu": (0.03, 0.0001, 0.005, 16, 0.02),
    "cpu": (0.30, 0.0010, 0.050, 4, 0.10),
    "edge": (0.60, 0.0020, 0.100, 2, 0.10),
}
SLOS = {"strict": {"ttft_s": 0.5, "itl_s": 0.02}, "lenient": {"ttft_s": 2.0, "itl_s": 0.08}}
console = Console()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(url)


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        cmd,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )


def fleet_yaml(ports: dict[str, int]) -> str:
    lines = ["version: 1", "name: routing-bench", "nodes:"]
    for name, port in ports.items():
        slots = FLEET[name][3]
        lines += [
            f"  - name: {name}-node",
            "    backends:",
            f"      - {{name: {name}, engine: vllm, url: 'http://127.0.0.1:{port}', models: [m], "
            f"max_concurrency: {slots}}}",
        ]
    return "\n".join(lines) + "\n"


async def one(
    session: aiohttp.ClientSession, url: str, scheduled: float, max_tokens: int, prompt: str
) -> dict:
    delay = scheduled - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": prompt}],
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
                if line.startswith(b"data: {") and b'"content"' in line:
                    chunks += 1
                    if first is None:
                        first = time.perf_counter() - scheduled
                elif line.startswith(b"data: {") and b'"error"' in line:
                    return {"ok": False, "status": "stream-error", "backend": backend}
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
        arrivals.append((t, rng.choice((32, 64, 128)), "word " * rng.randint(10, 100)))
    timeout = aiohttp.ClientTimeout(total=60)  # a request queued longer counts as failed
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        t0 = time.perf_counter() + 0.2
        results = await asyncio.gather(*(one(session, url, t0 + at, n, p) for at, n, p in arrivals))
    return list(results), seconds


def goodput(results: list[dict], seconds: float, slo: dict) -> float:
    good = sum(
        1
        for r in results
        if r["ok"]
        and r["ttft"] is not None
        and r["ttft"] <= slo["ttft_s"]
        and (r["itl"] is None or r["itl"] <= slo["itl_s"])
    )
    return good / seconds


def pct(xs: list[float], q: float) -> float | None:
    xs = sorted(x for x in xs if x is not None)
    return round(xs[min(len(xs) - 1, round(q / 100 * (len(xs) - 1)))], 4) if xs else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rates", type=float, nargs="+")
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/wave-routing-bench"))
    ap.add_argument("--out", type=Path, default=RESULTS / "routing.json")
    args = ap.parse_args()
    rates = args.rates or ([4.0, 12.0] if args.quick else [2.0, 6.0, 12.0, 20.0])
    seconds = args.seconds or (15.0 if args.quick else 25.0)
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen] = []
    result: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_at_start": os.getloadavg(),
        },
        "fleet": {
            n: dict(
                zip(("ttft_s", "prefill_s_per_token", "itl_s", "slots", "batch_slowdown"), v, strict=True)
            )
            for n, v in FLEET.items()
        },
        "slos": SLOS,
        "seconds_per_run": seconds,
        "method": __doc__.split("\n\n", 2)[2],
        "runs": [],
    }
    try:
        ports = {name: free_port() for name in FLEET}
        for name, (ttft, prefill, itl, slots, slow) in FLEET.items():
            p = start(
                [
                    sys.executable,
                    str(FAKE),
                    "--port",
                    str(ports[name]),
                    "--name",
                    name,
                    "--model",
                    "m",
                    "--ttft",
                    str(ttft),
                    "--prefill-per-token",
                    str(prefill),
                    "--itl",
                    str(itl),
                    "--slots",
                    str(slots),
                    "--batch-slowdown",
                    str(slow),
                ],
                work / f"{name}.log",
            )
            procs.append(p)
            wait_ready(f"http://127.0.0.1:{ports[name]}/health", p)
        cfg = work / "wave.yaml"
        cfg.write_text(fleet_yaml(ports))
        gateways = {}
        for policy in POLICIES:
            port = free_port()
            p = start(
                [str(WAVE), "serve", "--config", str(cfg), "--port", str(port), "--policy", policy],
                work / f"gateway-{policy}.log",
                env={"WAVE_API_KEY": KEY, "WAVE_HOME": str(work / "home")},
            )
            procs.append(p)
            wait_ready(f"http://127.0.0.1:{port}/ready", p)
            gateways[policy] = f"http://127.0.0.1:{port}"
        with Progress(console=console) as progress:
            task = progress.add_task("rates x policies", total=len(rates) * len(POLICIES))
            for i, rate in enumerate(rates):
                order = list(POLICIES)
                random.shuffle(order)
                for policy in order:
                    results, dur = asyncio.run(
                        run_load(gateways[policy] + "/v1/chat/completions", rate, seconds, seed=1000 + i)
                    )
                    ok = [r for r in results if r["ok"]]
                    share: dict[str, int] = {}
                    failures: dict[str, int] = {}
                    for r in results:
                        share[r["backend"] or "-"] = share.get(r["backend"] or "-", 0) + 1
                        if not r["ok"]:
                            why = str(r.get("status"))
                            failures[why] = failures.get(why, 0) + 1
                    run = {
                        "policy": policy,
                        "rate": rate,
                        "requests": len(results),
                        "failed": len(results) - len(ok),
                        "failures_by_status": failures,
                        "goodput": {k: round(goodput(results, dur, slo), 3) for k, slo in SLOS.items()},
                        "ttft_p50_s": pct([r["ttft"] for r in ok], 50),
                        "ttft_p99_s": pct([r["ttft"] for r in ok], 99),
                        "itl_p50_s": pct([r["itl"] for r in ok], 50),
                        "itl_p99_s": pct([r["itl"] for r in ok], 99),
                        "backend_share": share,
                    }
                    result["runs"].append(run)
                    progress.advance(task)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
    result["summary"] = summarise(result["runs"], rates)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    show(result)
    plot(result, args.out.with_suffix(".png"))
    console.print(f"results: {args.out}")


def summarise(runs: list[dict], rates: list[float]) -> dict:
    out: dict = {}
    for slo in SLOS:
        per_rate = {}
        for rate in rates:
            g = {r["policy"]: r["goodput"][slo] for r in runs if r["rate"] == rate}
            best_baseline = max(g["least-outstanding"], g["round-robin"])
            per_rate[str(rate)] = {
                **g,
                "ratio_vs_best_baseline": round(g["predicted-latency"] / best_baseline, 2)
                if best_baseline
                else None,
            }
        out[slo] = per_rate
    ratios = [v["ratio_vs_best_baseline"] for v in out["strict"].values() if v["ratio_vs_best_baseline"]]
    out["target_1.5x_at_strict_slo"] = {
        "min_ratio": min(ratios) if ratios else None,
        "met_at_every_rate": bool(ratios) and min(ratios) >= 1.5,
    }
    return out


def show(r: dict) -> None:
    t = Table(title="goodput (requests/s meeting the SLO)")
    for col in ("rate", "policy", "strict", "lenient", "ttft p50", "itl p50", "failed", "backend share"):
        t.add_column(col)
    for x in sorted(r["runs"], key=lambda x: (x["rate"], x["policy"])):
        t.add_row(
            str(x["rate"]),
            x["policy"],
            str(x["goodput"]["strict"]),
            str(x["goodput"]["lenient"]),
            str(x["ttft_p50_s"]),
            str(x["itl_p50_s"]),
            str(x["failed"]),
            json.dumps(x["backend_share"]),
        )
    console.print(t)
    console.print_json(data=r["summary"])


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SLOS), figsize=(11, 4))
    for ax, slo in zip(axes, SLOS, strict=True):
        for policy in POLICIES:
            rows = sorted((x for x in r["runs"] if x["policy"] == policy), key=lambda x: x["rate"])
            ax.plot([x["rate"] for x in rows], [x["goodput"][slo] for x in rows], marker="o", label=policy)
        rates = sorted({x["rate"] for x in r["runs"]})
        ax.plot(rates, rates, ls=":", color="grey", label="offered load")
        s = SLOS[slo]
        ax.set_title(f"{slo} SLO: TTFT <= {s['ttft_s']}s, ITL <= {s['itl_s'] * 1000:g}ms")
        ax.set_xlabel("offered load (requests/s, Poisson)")
        ax.set_ylabel("goodput (requests/s)")
        ax.legend()
    fig.suptitle("routing on a GPU-like / CPU-like / edge-like fleet (emulated)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
