"""What does the console cost the gateway?

1. Server-side render time of the Fleet page (and Keys, Requests, Audit) for a fleet of 50
   backends on 10 nodes and 200 API keys with 40,000 audit rows over the last day: the console
   app built in this process exactly as `wave serve` mounts it, requests sent through ASGI (no
   network), each Fleet render cold (its fragment cache is 0.5 s; the requests are spaced past it).
   Target: under 300 ms.
2. Live updates for 10 open browser tabs: a real `wave serve` with that fleet (the 50 backends
   served by 5 `wave emulate` engines, probed every second), light steady traffic through /v1 so the
   fleet view changes every second, and 10 tabs of headless Debian chromium signed in on the Fleet
   page (polling every second). The gateway process's CPU time is read over alternating windows
   with no tab and with 10 tabs open; the difference is what the live updates cost.
   Target: under 5 % of one core.

    flock /tmp/wave-bench.lock .venv/bin/python benchmarks/console_load.py        # ~3 min
    .venv/bin/python benchmarks/console_load.py --windows 2 --window-s 10         # shorter

Results (with the command) go to benchmarks/results/console_load.json and a PNG beside it.
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
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
from rich.console import Console

from waveidp.loopback import free_port, wait_http

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
WAVE = Path(sys.executable).with_name("wave")
ADMIN_KEY = "console-load-admin-key-0123456789abcdef"
API_KEY = "console-load-api-key-0123456789abcdef"
NODES, PER_NODE, KEYS, AUDIT_ROWS, ENGINES = 10, 5, 200, 40_000, 5
MODELS = ("llama-3.1-8b", "llama-3.2-3b", "qwen2.5-7b", "mistral-7b", "llama-3.2-1b")
GPUS = ("rtx-5070-ti", "rtx-4090", "l40s", "h100-sxm", "rtx-3090")
out = Console(stderr=True)


def fleet_yaml(engine_ports: list[int]) -> str:
    """10 nodes x 5 backends; backend i is served by emulator i % ENGINES (as model `m<k>`)."""
    lines = ["version: 1", "name: console-load", "nodes:"]
    for n in range(NODES):
        gpu = GPUS[n % len(GPUS)]
        lines += [
            f"  - name: node{n}",
            "    address: 127.0.0.1",
            "    devices:",
            f"      - {{id: gpu0, hardware: {gpu}, count: 2}}",
            "      - {id: cpu, hardware: ryzen-9-9900x}",
            "    backends:",
        ]
        for b in range(PER_NODE):
            i = n * PER_NODE + b
            port = engine_ports[i % len(engine_ports)]
            model = MODELS[i % len(MODELS)]
            lines += [
                f"      - name: b{i:02d}",
                "        engine: vllm",
                f'        url: "http://127.0.0.1:{port}"',
                "        devices: [gpu0]",
                "        max_concurrency: 16",
                f"        models: [{{name: m{i % len(engine_ports)}, model: {model}, quant: bf16}}]",
            ]
    return "\n".join(lines) + "\n"


def seed_keys_and_audit(home: Path) -> None:
    """200 keys with limits, and AUDIT_ROWS requests spread over them in the last 24 h."""
    from waveidp.security.audit import AuditEntry, AuditLog
    from waveidp.security.keys import KeyStore

    store = KeyStore(home / "keys.db")
    for k in range(KEYS):
        store.create(f"team{k:03d}", models=["*"], rpm=600 if k % 3 == 0 else None)
    store.close()
    log = AuditLog(home / "audit.db")
    rng = random.Random(1)
    now = time.time()
    for i in range(AUDIT_ROWS):
        status = 200 if rng.random() > 0.03 else rng.choice((429, 502))
        log.record(
            AuditEntry(
                principal=f"team{rng.randrange(KEYS):03d}",
                status=status,
                ts=now - 86400 * (1 - i / AUDIT_ROWS),
                request_id=f"seed-{i}",
                endpoint="chat",
                model=f"m{i % ENGINES}",
                backend=f"b{i % (NODES * PER_NODE):02d}",
                tokens_in=rng.randrange(20, 800),
                tokens_out=rng.randrange(10, 400),
                latency_s=rng.uniform(0.05, 3.0),
            )
        )
    log.flush(60)
    log.close()


def render_times(home: Path, config: Path, rounds: int) -> dict[str, Any]:
    """Part 1: the console app as `gateway.compose` mounts it, in this process, requests through ASGI."""
    os.environ["WAVE_HOME"] = str(home)
    from waveidp import fleet as fleet_mod
    from waveidp.console import ConsoleOptions, mount_console
    from waveidp.gateway import Gateway, backends_from_fleet, create_app
    from waveidp.security.gateway_security import SecurityOptions, build_security
    from waveidp.security.secrets import Secret

    f = fleet_mod.load(config)
    admin = Secret(ADMIN_KEY, name="admin key")
    security = build_security(
        SecurityOptions(admin_key=admin, keys_db=home / "keys.db", audit_db=home / "audit.db"),
        host="127.0.0.1",
    )
    gw = Gateway(backends_from_fleet(f), security.guard, config=f.gateway, routing=f.routing)
    app = create_app(gw)
    security.mount(app)
    console = mount_console(app, security, ConsoleOptions(admin_key=admin, fleet=f))
    rng = random.Random(2)
    for i, b in enumerate(gw.backends):  # a fleet in motion: load, observations, a few down
        b.inflight = rng.randrange(0, 12)
        for _ in range(20):
            b.ttft.observe(rng.uniform(0.05, 0.8))
            b.itl.observe(rng.uniform(0.008, 0.05))
        if i % 17 == 3:
            b.mark_down("health check failed: cannot connect (Connection refused)")
        gw.metrics.child(gw.metrics.decisions, "predicted-latency", b.name).inc(rng.randrange(1, 500))
    cookie = {"wave_console": console.sessions.create("admin", "admin-key", "admin")}
    pages = {
        "fleet": "/console/",
        "keys": "/console/keys",
        "requests": "/console/requests",
        "audit": "/console/audit",
    }

    async def run() -> dict[str, list[float]]:
        times: dict[str, list[float]] = {name: [] for name in pages}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench", cookies=cookie) as c:
            for name, path in pages.items():  # warm-up: templates compiled, catalog loaded
                assert (await c.get(path)).status_code == 200, name
            for _ in range(rounds):
                for name, path in pages.items():
                    await asyncio.sleep(0.55)  # past the fleet fragment's 0.5 s cache: a cold render
                    t0 = time.perf_counter()
                    r = await c.get(path)
                    times[name].append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, (name, r.status_code)
        return times

    times = asyncio.run(run())
    console.close()
    security.close()
    return {
        name: {
            "n": len(xs),
            "p50_ms": statistics.median(xs),
            "p95_ms": sorted(xs)[int(0.95 * (len(xs) - 1))],
            "max_ms": max(xs),
            "samples_ms": xs,
        }
        for name, xs in times.items()
    }


@contextlib.contextmanager
def started(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(
        cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
        env={**os.environ, **(env or {})}, start_new_session=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def live_updates(
    home: Path, work: Path, windows: int, window_s: float, tabs: int, rate: float
) -> dict[str, Any]:
    """Part 2: gateway CPU with no tab vs `tabs` tabs polling the Fleet page, traffic on both."""
    from playwright.sync_api import sync_playwright

    ports = [free_port() for _ in range(ENGINES)]
    gw_port = free_port()
    config = work / "fleet50.yaml"
    config.write_text(fleet_yaml(ports))
    with contextlib.ExitStack() as stack:
        for i, p in enumerate(ports):
            stack.enter_context(
                started(
                    [str(WAVE), "emulate", "--model", f"m{i}", "--step-ms", "3", "--port", str(p)],
                    work / f"emu{i}.log",
                )
            )
        for p in ports:
            wait_http(f"http://127.0.0.1:{p}/health")
        env = {"WAVE_HOME": str(home), "WAVE_ADMIN_KEY": ADMIN_KEY, "WAVE_API_KEY": API_KEY}
        gw = stack.enter_context(
            started(
                [str(WAVE), "serve", "--config", str(config), "--port", str(gw_port)], work / "serve.log", env
            )
        )
        base = f"http://127.0.0.1:{gw_port}"
        wait_http(base + "/ready")
        gateway = psutil.Process(gw.pid)
        stop = threading.Event()

        def traffic() -> None:  # steady light load, so the fleet view changes every second
            with httpx.Client(timeout=30, headers={"authorization": f"Bearer {API_KEY}"}) as c:
                i = 0
                while not stop.is_set():
                    body = {
                        "model": f"m{i % ENGINES}",
                        "messages": [{"role": "user", "content": "hi"}],
                        "max_tokens": 8,
                    }
                    with contextlib.suppress(httpx.HTTPError):
                        c.post(base + "/v1/chat/completions", json=body)
                    i += 1
                    stop.wait(1 / rate)

        sender = threading.Thread(target=traffic, daemon=True)
        sender.start()
        phases: list[dict[str, Any]] = []
        with sync_playwright() as pw:
            profile = tempfile.mkdtemp(prefix="console-load-chromium-")
            browser = pw.chromium.launch_persistent_context(
                profile, executable_path="/usr/bin/chromium", headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                      "--disable-component-update", "--no-first-run"],
            )  # fmt: skip
            first = browser.pages[0] if browser.pages else browser.new_page()
            first.goto(base + "/console/login")
            first.fill("#admin_key", ADMIN_KEY)
            first.click("form[action$='/login'] button[type=submit]")
            first.wait_for_selector("#fleet-live")
            first.goto("about:blank")
            open_tabs: list[Any] = []
            time.sleep(3)  # settle: sizing predictions built, first probes done
            for w in range(windows):
                for n_tabs in (0, tabs):
                    while len(open_tabs) < n_tabs:
                        t = browser.new_page()
                        t.goto(base + "/console/")
                        t.wait_for_selector("#fleet-live")
                        open_tabs.append(t)
                    while len(open_tabs) > n_tabs:
                        open_tabs.pop().close()
                    time.sleep(2)  # let the tabs settle into their polling
                    c0, t0 = sum(gateway.cpu_times()[:2]), time.monotonic()
                    time.sleep(window_s)
                    c1, t1 = sum(gateway.cpu_times()[:2]), time.monotonic()
                    share = (c1 - c0) / (t1 - t0) * 100
                    phases.append({"window": w, "tabs": n_tabs, "cpu_percent_of_one_core": share})
                    out.print(f"window {w}: {n_tabs:2d} tabs -> gateway {share:5.2f} % of one core")
            for t in open_tabs:
                t.close()
            browser.close()
        stop.set()
        sender.join(5)
    deltas = [
        b["cpu_percent_of_one_core"] - a["cpu_percent_of_one_core"]
        for a, b in zip(phases[0::2], phases[1::2], strict=True)
    ]
    return {
        "tabs": tabs,
        "window_s": window_s,
        "traffic_per_s": rate,
        "phases": phases,
        "delta_percent": deltas,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    render = result["render"]
    names = list(render)
    a.boxplot([render[n]["samples_ms"] for n in names], tick_labels=names)
    a.axhline(300, color="red", linestyle="--", label="target 300 ms")
    a.set_ylabel("server-side render (ms)")
    a.set_title(f"{NODES * PER_NODE} backends, {KEYS} keys, {AUDIT_ROWS:,} audit rows")
    a.legend()
    live = result["live"]
    for n_tabs, color in ((0, "grey"), (live["tabs"], "tab:blue")):
        xs = [p["window"] for p in live["phases"] if p["tabs"] == n_tabs]
        ys = [p["cpu_percent_of_one_core"] for p in live["phases"] if p["tabs"] == n_tabs]
        b.plot(xs, ys, "o-", color=color, label=f"{n_tabs} tabs")
    b.set_xlabel("window")
    b.set_ylabel("gateway CPU (% of one core)")
    b.set_title(f"live updates: {live['tabs']} tabs on the Fleet page")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20, help="renders per page")
    ap.add_argument("--windows", type=int, default=3, help="pairs of (no tab, N tabs) CPU windows")
    ap.add_argument("--window-s", type=float, default=20.0)
    ap.add_argument("--tabs", type=int, default=10)
    ap.add_argument("--rate", type=float, default=4.0, help="requests/s of background traffic")
    ap.add_argument("--out", type=Path, default=RESULTS / "console_load.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="console-load-") as tmp:
        work = Path(tmp)
        home = work / "home"
        home.mkdir()
        out.print(f"seeding {KEYS} keys and {AUDIT_ROWS:,} audit rows")
        seed_keys_and_audit(home)
        config = work / "fleet-render.yaml"
        config.write_text(fleet_yaml([9] * ENGINES))
        out.print("part 1: server-side render times")
        render = render_times(home, config, args.rounds)
        for name, r in render.items():
            out.print(
                f"  {name:9s} p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms  max {r['max_ms']:7.1f} ms"
            )
        out.print(f"part 2: live updates, {args.tabs} tabs")
        live = live_updates(home, work, args.windows, args.window_s, args.tabs, args.rate)
    result = {
        "command": shlex.join(["python", *sys.argv]),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_at_start": os.getloadavg(),
        },
        "fleet": {"backends": NODES * PER_NODE, "nodes": NODES, "keys": KEYS, "audit_rows": AUDIT_ROWS},
        "render": render,
        "live": live,
        "targets": {"fleet_render_ms": 300, "live_cpu_percent": 5},
        "verdict": {
            "fleet_render_p95_ms": render["fleet"]["p95_ms"],
            "fleet_render_under_300_ms": render["fleet"]["max_ms"] < 300,
            "live_cpu_delta_percent_median": statistics.median(live["delta_percent"]),
            "live_under_5_percent": max(live["delta_percent"]) < 5,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    plot(result, args.out.with_suffix(".png"))
    v = result["verdict"]
    out.print(
        f"fleet page p95 {v['fleet_render_p95_ms']:.1f} ms (target < 300); live updates for "
        f"{args.tabs} tabs: +{v['live_cpu_delta_percent_median']:.2f} % of one core, median over "
        f"{args.windows} pairs (target < 5)"
    )
    out.print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
