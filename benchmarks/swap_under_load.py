"""What swapping a deployed model costs the requests in flight: `wave deploy`'s swap and rollback
against the naive way (remove the old deployment, then deploy the new one), under the same steady
open-loop load, in one run.

`wave up` (a scratch WAVE_HOME, a model store made from the packaged SmolLM2-135M-Instruct and
Gemma 3 270M) serves the name `chat`, first with SmolLM2. A client sends `--rate` requests a second
(Poisson arrivals; every other one a stream; `--tokens` tokens each, ignore_eos) through the
gateway for the whole run, and records each request's start, end, status, time to the first token
and the backend that answered. Meanwhile, `--settle` seconds apart:

1. swap: `POST /admin/deployments` chat -> Gemma (the new engine starts, takes the new requests,
   the old one drains and stops);
2. rollback: `POST /admin/deployments/chat/rollback` (back to SmolLM2, the same way);
3. naive: `DELETE /admin/deployments/chat` then `POST` it again with Gemma: what stopping the old
   engine and starting a new one does to the requests that arrive in between.

Prints, per phase (the window from the admin call to the end of the old engine's drain), the
requests, the failures (and why) and the latency (p50/p95/max) against the steady state before;
saves JSON with the exact command and a PNG (latency over time, coloured by backend, the phases
marked) under benchmarks/results/.

    flock /tmp/wave-bench.lock .venv/bin/python benchmarks/swap_under_load.py   # ~2-3 min
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from waveidp import models
from waveidp.engines.local_files import embedded_model_path
from waveidp.loopback import free_port
from waveidp.models import gemma_model_path

RESULTS = Path(__file__).parent / "results"
WAVE = Path(sys.executable).with_name("wave")
SMOLLM2, GEMMA = "smollm2-135m-instruct-q4_1", "gemma-3-270m-q4_k_m"
FLAGS = {"-t": 1, "-np": 4, "-c": 4096}
console = Console(stderr=True)


@dataclass
class Request:
    started: float  # seconds since the load began
    ended: float
    status: int
    backend: str
    stream: bool
    ttft: float | None = None
    error: str | None = None


@dataclass
class Phase:
    name: str
    started: float
    serving: float | None = None  # the admin call answered (new engine taking requests)
    ended: float | None = None  # the old engine drained and stopped
    answer: dict[str, Any] | None = None


async def one(session: aiohttp.ClientSession, base: str, t0: float, stream: bool, tokens: int) -> Request:
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": "Tell me about the sea."}],
        "max_tokens": tokens,
        "stream": stream,
        "ignore_eos": True,
    }
    start = time.monotonic()
    ttft = None
    try:
        async with session.post(base + "/v1/chat/completions", json=body) as r:
            backend = r.headers.get("x-wave-backend", "")
            if not stream:
                await r.read()
                return Request(start - t0, time.monotonic() - t0, r.status, backend, False)
            error, done = None, False
            async for raw in r.content:
                line = raw.decode().strip()
                if not line.startswith("data: "):
                    continue
                if ttft is None and '"content"' in line:
                    ttft = time.monotonic() - start
                if '"error"' in line:
                    error = line[:200]
                done = line == "data: [DONE]"
            if not done and r.status == 200:
                error = error or "stream ended without [DONE]"
            return Request(start - t0, time.monotonic() - t0, r.status, backend, True, ttft, error)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Request(start - t0, time.monotonic() - t0, 0, "", stream, ttft, f"{type(exc).__name__}: {exc}")


async def load(
    base: str, key: str, rate: float, tokens: int, stop: asyncio.Event, t0: float
) -> list[Request]:
    """Poisson arrivals at `rate`/s until `stop`; every request awaited before returning."""
    rng = random.Random(1)
    tasks: list[asyncio.Task[Request]] = []
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(headers={"authorization": f"Bearer {key}"}, timeout=timeout) as session:
        n = 0
        while not stop.is_set():
            tasks.append(asyncio.create_task(one(session, base, t0, n % 2 == 1, tokens)))
            n += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.expovariate(rate))
        return list(await asyncio.gather(*tasks))


async def admin(
    base: str, key: str, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=600)
    async with (
        aiohttp.ClientSession(timeout=timeout) as s,
        s.request(
            method, base + "/admin/deployments" + path, json=body, headers={"authorization": f"Bearer {key}"}
        ) as r,
    ):
        answer = await r.json()
        if r.status >= 400:
            raise RuntimeError(f"{method} {path}: {r.status} {answer}")
        return dict(answer)


async def scenario(
    base: str, key: str, admin_key: str, args: argparse.Namespace
) -> tuple[list[Request], list[Phase]]:
    await admin(base, admin_key, "POST", "", {"name": "chat", "model": SMOLLM2, "flags": FLAGS})
    stop = asyncio.Event()
    t0 = time.monotonic()
    loader = asyncio.create_task(load(base, key, args.rate, args.tokens, stop, t0))
    phases: list[Phase] = []

    async def phase(name: str, *calls: tuple[str, str, dict[str, Any] | None]) -> None:
        await asyncio.sleep(args.settle)
        p = Phase(name, time.monotonic() - t0)
        console.print(f"{p.started:6.1f}s {name}")
        for method, path, body in calls:
            p.answer = await admin(base, admin_key, method, path, body)
        p.serving = time.monotonic() - t0
        p.ended = p.serving  # the calls wait for the drain (wait=true)
        phases.append(p)

    await phase("swap", ("POST", "", {"name": "chat", "model": GEMMA, "flags": FLAGS}))
    await phase("rollback", ("POST", "/chat/rollback", None))
    await phase(
        "naive", ("DELETE", "/chat", None), ("POST", "", {"name": "chat", "model": GEMMA, "flags": FLAGS})
    )
    await asyncio.sleep(args.settle)
    stop.set()
    return await loader, phases


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def window(reqs: list[Request], start: float, end: float) -> dict[str, Any]:
    """Requests that were in flight at some moment of [start, end]."""
    inside = [r for r in reqs if r.started <= end and r.ended >= start]
    ok = [r for r in inside if r.status == 200 and not r.error]
    latency = [r.ended - r.started for r in ok]
    ttft = [r.ttft for r in ok if r.ttft is not None]
    failures: dict[str, int] = {}
    for r in inside:
        if r.status != 200 or r.error:
            why = r.error or f"HTTP {r.status}"
            failures[why[:80]] = failures.get(why[:80], 0) + 1
    return {
        "from_s": round(start, 2),
        "to_s": round(end, 2),
        "requests": len(inside),
        "failed": len(inside) - len(ok),
        "failures": failures,
        "latency_p50_s": _r(pct(latency, 0.5)),
        "latency_p95_s": _r(pct(latency, 0.95)),
        "latency_max_s": _r(max(latency) if latency else None),
        "ttft_p50_s": _r(pct(ttft, 0.5)),
        "ttft_max_s": _r(max(ttft) if ttft else None),
        "backends": sorted({r.backend for r in inside if r.backend}),
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def make_store(root: Path) -> None:
    store = models.ModelStore(root)
    models.import_path(store, embedded_model_path(), name=SMOLLM2)
    gemma_model_path(root)


def plot(reqs: list[Request], phases: list[Phase], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5))
    backends = sorted({r.backend for r in reqs if r.backend})
    for b in backends:
        rs = [r for r in reqs if r.backend == b and r.status == 200 and not r.error]
        ax.scatter([r.started for r in rs], [r.ended - r.started for r in rs], s=8, label=b)
    bad = [r for r in reqs if r.status != 200 or r.error]
    if bad:
        ax.scatter(
            [r.started for r in bad],
            [r.ended - r.started for r in bad],
            s=30,
            marker="x",
            color="red",
            label=f"failed ({len(bad)})",
        )
    for p in phases:
        ax.axvspan(p.started, p.ended or p.started, alpha=0.15, color="grey")
        ax.text(p.started, ax.get_ylim()[1] * 0.95, p.name, fontsize=8)
    ax.set_xlabel("seconds since the load began (request start)")
    ax.set_ylabel("request latency (s)")
    ax.set_title("model `chat` under a steady load: wave deploy's swap and rollback vs remove-then-deploy")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=1.0, help="requests per second (Poisson)")
    p.add_argument("--tokens", type=int, default=12, help="tokens per request (ignore_eos)")
    p.add_argument("--settle", type=float, default=12.0, help="seconds of steady load between phases")
    p.add_argument("--out", type=Path, default=RESULTS / "swap_under_load.json")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="wave-swap-bench-") as tmp:
        home, store = Path(tmp) / "home", Path(tmp) / "models"
        console.print("making the model store (SmolLM2, Gemma 3 270M)")
        make_store(store)
        key = "swap-bench-key-0123456789abcdef"  # passes check_strength
        env = {**os.environ, "WAVE_HOME": str(home), "WAVE_MODELS_DIR": str(store), "WAVE_API_KEY": key}
        port = free_port()
        with open(Path(tmp) / "up.log", "wb") as log:
            up = subprocess.Popen(
                [str(WAVE), "up", "--port", str(port), "--json"],
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                start_new_session=True,
            )
            try:
                assert up.stdout is not None
                line = up.stdout.readline()
                if not line:
                    raise SystemExit(f"wave up did not start: {(Path(tmp) / 'up.log').read_text()[-2000:]}")
                base = f"http://127.0.0.1:{port}"
                admin_key = (home / "admin.key").read_text().strip()
                reqs, phases = asyncio.run(scenario(base, key, admin_key, args))
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(up.pid, signal.SIGTERM)
                up.wait(30)
    first = phases[0].started
    steady = window(reqs, 1.0, first)
    result = {
        "command": shlex.join(["python", "benchmarks/swap_under_load.py", *sys.argv[1:]]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "method": __doc__,
        "settings": {"rate_per_s": args.rate, "tokens": args.tokens, "settle_s": args.settle, "flags": FLAGS},
        "requests": len(reqs),
        "failed": sum(1 for r in reqs if r.status != 200 or r.error),
        "steady": steady,
        "phases": [
            {
                "name": ph.name,
                "window": window(reqs, ph.started, ph.ended or ph.started),
                "admin_seconds": round((ph.ended or ph.started) - ph.started, 2),
                "drain": (ph.answer or {}).get("drain"),
                "new_engine_start_s": (ph.answer or {}).get("started_s"),
            }
            for ph in phases
        ],
        "per_request": [asdict(r) for r in reqs],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    plot(reqs, phases, args.out.with_suffix(".png"))
    table = Table(
        title=f"swap under load: {len(reqs)} requests at {args.rate:g}/s, {args.tokens} tokens each"
    )
    for col in ("window", "s", "requests", "failed", "latency p50", "p95", "max", "TTFT p50", "backends"):
        table.add_column(col)
    rows = [("steady", steady)] + [(ph["name"], ph["window"]) for ph in result["phases"]]  # type: ignore[index]
    for name, w in rows:
        table.add_row(
            name,
            f"{w['to_s'] - w['from_s']:.1f}",
            str(w["requests"]),
            str(w["failed"]),
            *(
                f"{w[k]:.2f}" if w[k] is not None else "-"
                for k in ("latency_p50_s", "latency_p95_s", "latency_max_s", "ttft_p50_s")
            ),
            " ".join(w["backends"]),
        )
    Console(width=150).print(table)
    for ph in result["phases"]:  # type: ignore[union-attr]
        if ph["window"]["failures"]:
            console.print(f"{ph['name']} failures: {ph['window']['failures']}")
    console.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
