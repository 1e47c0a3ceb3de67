"""Does the gateway stay available to honest clients while a hostile one attacks it? The
availability attacks of issue 19 (items 1, 2, 3, 5), each repeated against a running `wave serve`
with its default limits while honest clients keep sending requests beside it.

    .venv/bin/python benchmarks/attack.py                   # every attack, 15 s each (~2 min)
    .venv/bin/python benchmarks/attack.py --seconds 5 --attacks headers slowloris
    .venv/bin/python benchmarks/attack.py --attacks nested-json --baseline /tmp/wave-old  # old vs new

The gateway runs in front of tests/gateway/fake_upstream.py (5 ms to the first token), with the
full security guard (bootstrap key, audit log) and metrics. Honest traffic: 4 closed-loop clients
(aiohttp, one connection each, from 127.0.0.2) sending small chat requests with the bootstrap
key. The attacker is a separate process from 127.0.0.1, at nice 19: on a LAN its CPU would be
its own machine's, here it shares the 2 cores with everything else, and the gateway's share is
what is measured (its CPU seconds and the attacker's are reported). The gateway's
`uncapped_addresses` is emptied so that loopback addresses are capped like LAN ones (the one
setting changed from the defaults). Per attack: the honest clients' p50/p99 latency in a quiet
window just before it and during it, their errors, the gateway's RSS and the audit database's
size (with -wal and -shm) before and after with the rows added by honest and other principals,
and what the attacker managed (requests sent, answers by status).

- `headers` (item 1): 8 connections in a loop, each sending a request head with an 8 MiB
  `X-Request-Id` to a model route without a key.
- `model-labels` (item 2): requests with 256 KiB model names, with and without a key (403/404
  paths), and a `/metrics` scrape every second, as Prometheus would.
- `slowloris` (item 3): up to 2000 connections held open, each sending a byte of an unfinished
  request head every few seconds, re-opened when the gateway closes them.
- `nested-json` (item 5): 2 keyed clients sending 2.4 MB bodies of 40k arrays nested 30 deep.

Targets (issue 19): honest p50 within 2x of its quiet value under each attack, and RSS and disk
growth bounded by configuration. Results, with the command, go to benchmarks/results/attack.json
and a PNG beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from gateway_overhead import git_revision, source_env  # benchmarks/ is the script's path
from rich.console import Console
from rich.table import Table

from waveidp.loopback import free_port, wait_http

REPO = Path(__file__).resolve().parent.parent
FAKE = REPO / "tests" / "gateway" / "fake_upstream.py"
WAVE = Path(sys.executable).with_name("wave")
RESULTS = REPO / "benchmarks" / "results"
KEY = "attack-bench-key-0123456789abcdefghij"
MODEL = "bench-model"
ATTACKS = ("headers", "model-labels", "slowloris", "nested-json")
HONEST_CLIENTS = 4
HONEST_ADDRESS = "127.0.0.2"  # another loopback address: the cap counts the attacker's alone
console = Console()


# --- the attacker (a process of its own: `attack.py --attacker KIND`) ---------------------------------


async def attacker(kind: str, host: str, port: int, seconds: float) -> dict[str, Any]:
    os.nice(19)
    stop = time.monotonic() + seconds
    statuses: dict[str, int] = {}
    sent = [0]

    def count(status: str) -> None:
        statuses[status] = statuses.get(status, 0) + 1

    async def raw(request: bytes) -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            count(f"connect:{exc.errno}")
            await asyncio.sleep(0.01)
            return
        try:
            writer.write(request)
            sent[0] += 1
            with contextlib.suppress(ConnectionError):
                await asyncio.wait_for(writer.drain(), 10)
            line = await asyncio.wait_for(reader.readline(), 10)
            count(line.split(b" ")[1].decode() if line.count(b" ") >= 2 else "closed")
        except (TimeoutError, ConnectionError):
            count("closed")
        finally:
            writer.close()

    async def post(
        session: aiohttp.ClientSession, headers: dict[str, str], body: Callable[[int], dict[str, Any] | bytes]
    ) -> None:
        """POST body(1), body(2), ... to the chat route until the attack's time is up."""
        i = 0
        while time.monotonic() < stop:
            i += 1
            data = body(i)
            sent[0] += 1
            url = f"http://{host}:{port}/v1/chat/completions"
            payload: dict[str, Any] = {"data": data} if isinstance(data, bytes) else {"json": data}
            try:
                async with session.post(url, headers=headers, **payload) as r:
                    await r.read()
                    count(str(r.status))
            except aiohttp.ClientError:
                count("error")

    if kind == "headers":
        head = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: "
            + b"r" * (8 << 20)
            + b"\r\n\r\n"
        )

        async def loop() -> None:
            while time.monotonic() < stop:
                await raw(head)

        await asyncio.gather(*(loop() for _ in range(8)))
    elif kind == "model-labels":
        async with aiohttp.ClientSession() as session:

            def label(i: int) -> dict[str, Any]:
                return {"model": f"{i}-" + "m" * (256 << 10), "messages": [{"role": "user", "content": "x"}]}

            async def scrape() -> None:
                while time.monotonic() < stop:
                    url = f"http://{host}:{port}/metrics"
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(url, headers={"authorization": f"Bearer {KEY}"}) as r:
                            await r.read()
                    await asyncio.sleep(1.0)

            await asyncio.gather(
                post(session, {"authorization": f"Bearer {KEY}"}, label), post(session, {}, label), scrape()
            )
    elif kind == "slowloris":
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))

        async def hold() -> None:
            while time.monotonic() < stop:
                try:
                    reader, writer = await asyncio.open_connection(host, port)
                except OSError as exc:
                    count(f"connect:{exc.errno}")
                    await asyncio.sleep(0.5)
                    continue
                sent[0] += 1
                try:
                    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
                    while time.monotonic() < stop:
                        await asyncio.sleep(2.0)
                        if reader.at_eof() or writer.is_closing():
                            break
                        writer.write(b"X-a: b\r\n")
                        await writer.drain()
                    data = await asyncio.wait_for(reader.read(200), 0.5) if reader.at_eof() else b""
                    count(data.split(b" ")[1].decode() if data.count(b" ") >= 2 else "closed")
                except (TimeoutError, ConnectionError):
                    count("closed")
                finally:
                    writer.close()

        await asyncio.gather(*(hold() for _ in range(2000)))
    elif kind == "nested-json":
        nested = "[" * 30 + "1" + "]" * 30
        body = b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": "x"}], "x": ['
        body += ",".join([nested] * 40_000).encode() + b"]}"
        headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(
                post(session, headers, lambda i: body), post(session, headers, lambda i: body)
            )
    return {"requests_or_connections": sent[0], "answers": statuses}


# --- honest clients and the measurement ---------------------------------------------------------------


async def honest(url: str, seconds: float) -> dict[str, Any]:
    """HONEST_CLIENTS closed-loop clients for `seconds`: latencies (s) of good answers, and errors."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}
    stop = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(local_addr=(HONEST_ADDRESS, 0), limit=HONEST_CLIENTS)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client() -> None:
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                try:
                    async with session.post(
                        url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"}
                    ) as r:
                        await r.read()
                        if r.status == 200:
                            latencies.append(time.perf_counter() - t0)
                        else:
                            errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    await asyncio.sleep(0.05)

        await asyncio.gather(*(client() for _ in range(HONEST_CLIENTS)))
    return {"latencies": latencies, "errors": errors}


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def summary(run: dict[str, Any]) -> dict[str, Any]:
    lat = run["latencies"]
    return {
        "requests": len(lat),
        "errors": run["errors"],
        "p50_ms": round(pct(lat, 50) * 1e3, 2) if lat else None,
        "p99_ms": round(pct(lat, 99) * 1e3, 2) if lat else None,
    }


def disk_bytes(home: Path) -> int:
    return sum(p.stat().st_size for p in home.glob("audit.db*"))


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def cpu_s(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def audit_rows(home: Path, after: int) -> tuple[int, dict[str, int]]:
    """(highest id, rows after `after` by principal: the honest key's are `default`)."""
    import sqlite3

    db = sqlite3.connect(f"file:{home / 'audit.db'}?mode=ro", uri=True)
    try:
        top = db.execute("SELECT COALESCE(MAX(id), 0) FROM audit").fetchone()[0]
        rows = db.execute(
            "SELECT principal, COUNT(*) FROM audit WHERE id > ? GROUP BY 1", (after,)
        ).fetchall()
    finally:
        db.close()
    return top, {("honest" if p == "default" else p): n for p, n in rows}


def run_attack(kind: str, url: str, port: int, pid: int, home: Path, seconds: float) -> dict[str, Any]:
    quiet = summary(asyncio.run(honest(url, min(seconds, 8.0))))
    time.sleep(0.5)  # the audit writer's last batch of the quiet window
    rss0, disk0, cpu0 = rss_mb(pid), disk_bytes(home), cpu_s(pid)
    top0, _ = audit_rows(home, 0)
    cmd = [sys.executable, __file__, "--attacker", kind, "--port", str(port), "--seconds", str(seconds)]
    attack = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    time.sleep(min(2.0, seconds / 5))  # let the attack take hold before measuring
    under = summary(asyncio.run(honest(url, seconds - min(2.0, seconds / 5))))
    rss_peak = rss_mb(pid)
    attacker_cpu = psutil.Process(attack.pid).cpu_times()
    out, _ = attack.communicate(timeout=seconds + 60)
    gateway_cpu = cpu_s(pid) - cpu0
    time.sleep(1.0)  # the audit writer's last batch, connections closing
    _, added = audit_rows(home, top0)
    quiet_p50, attack_p50 = quiet["p50_ms"], under["p50_ms"]
    return {
        "attack": kind,
        "seconds": seconds,
        "honest_quiet": quiet,
        "honest_under_attack": under,
        "p50_ratio": round(attack_p50 / quiet_p50, 2) if quiet_p50 and attack_p50 else None,
        "rss_mb": {"before": round(rss0, 1), "during": round(rss_peak, 1), "after": round(rss_mb(pid), 1)},
        "audit_disk_bytes": {"before": disk0, "after": disk_bytes(home), "growth": disk_bytes(home) - disk0},
        "audit_rows_added": added,
        "cpu_s": {
            "gateway": round(gateway_cpu, 2),
            "attacker_until_last_sample": round(attacker_cpu.user + attacker_cpu.system, 2),
        },
        "attacker": json.loads(out.strip().splitlines()[-1]) if out.strip() else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--attacks", nargs="+", choices=ATTACKS, default=list(ATTACKS))
    ap.add_argument("--seconds", type=float, default=15.0, help="how long each attack runs")
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/wave-attack-bench"))
    ap.add_argument("--out", type=Path, default=RESULTS / "attack.json")
    ap.add_argument(
        "--baseline",
        type=Path,
        help="another Wave source tree (its src/) served beside this one by the same venv; each "
        "attack runs against both in turn",
    )
    ap.add_argument("--attacker", choices=ATTACKS, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.attacker:
        result = asyncio.run(attacker(args.attacker, "127.0.0.1", args.port, args.seconds))
        print(json.dumps(result))
        return
    args.work_dir.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()},
        "method": __doc__.split("\n\n", 2)[2],
    }
    procs: list[subprocess.Popen] = []
    try:
        up_port = free_port()
        upstream = subprocess.Popen(
            [sys.executable, str(FAKE), "--port", str(up_port), "--model", MODEL, "--ttft", "0.005"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(upstream)
        wait_http(f"http://127.0.0.1:{up_port}/health", upstream)
        up_url = f"http://127.0.0.1:{up_port}"
        config = args.work_dir / "wave.yaml"
        config.write_text("gateway:\n  uncapped_addresses: []\n")
        trees: list[tuple[str, Path | None]] = [("wave", None)]
        if args.baseline is not None:
            trees.append(("base", args.baseline))
            result["baseline"] = {"source": str(args.baseline), "revision": git_revision(args.baseline)}
        gateways: dict[str, tuple[int, subprocess.Popen, Path]] = {}
        for label, src in trees:
            port = free_port()
            home = args.work_dir / f"{label}-home"
            log = open(args.work_dir / f"{label}-gateway.log", "wb")  # noqa: SIM115
            gateway = subprocess.Popen(
                [str(WAVE), "serve", "--config", str(config), "--port", str(port), "--upstream", up_url],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "WAVE_HOME": str(home), "WAVE_API_KEY": KEY, **source_env(src)},
            )
            procs.append(gateway)
            wait_http(f"http://127.0.0.1:{port}/ready", gateway)
            gateways[label] = (port, gateway, home)
        rows: dict[str, list[dict[str, Any]]] = {label: [] for label, _ in trees}
        for kind in args.attacks:
            for label, (port, gateway, home) in gateways.items():  # old and new in turn, per attack
                console.print(f"attack: {kind} ({args.seconds:g} s) on {label}")
                url = f"http://127.0.0.1:{port}"
                rows[label].append(run_attack(kind, url, port, gateway.pid, home, args.seconds))
                console.print_json(data={k: v for k, v in rows[label][-1].items() if k != "attacker"})
        result["attacks"] = rows["wave"]
        if "base" in rows:
            result["baseline_attacks"] = rows["base"]
    finally:
        for p in procs:
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
    result["targets"] = {
        r["attack"]: {
            "honest_p50_within_2x": r["p50_ratio"] is not None and r["p50_ratio"] <= 2.0,
            "honest_errors": sum(r["honest_under_attack"]["errors"].values()),
            "rss_growth_mb": round(r["rss_mb"]["after"] - r["rss_mb"]["before"], 1),
            "audit_growth_bytes": r["audit_disk_bytes"]["growth"],
        }
        for r in result["attacks"]
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    show(result)
    plot(result, args.out.with_suffix(".png"))
    console.print(f"results: {args.out}")


def show(r: dict[str, Any]) -> None:
    t = Table(title="honest clients under attack (p50 ms: quiet -> attack)")
    cols = (
        "attack",
        "p50 quiet",
        "p50 attack",
        "ratio",
        "errors",
        "RSS MB",
        "audit growth",
        "CPU s",
        "attacker",
    )
    for col in cols:
        t.add_column(col)
    tagged = [(x, "") for x in r["attacks"]] + [(x, " (base)") for x in r.get("baseline_attacks", [])]
    for x, tag in tagged:
        t.add_row(
            x["attack"] + tag,
            str(x["honest_quiet"]["p50_ms"]),
            str(x["honest_under_attack"]["p50_ms"]),
            str(x["p50_ratio"]),
            str(x["honest_under_attack"]["errors"]),
            f"{x['rss_mb']['before']} -> {x['rss_mb']['during']} -> {x['rss_mb']['after']}",
            f"{x['audit_disk_bytes']['growth'] / 1024:.0f} KiB, rows {x['audit_rows_added']}",
            f"gw {x['cpu_s']['gateway']}, attacker {x['cpu_s']['attacker_until_last_sample']}",
            json.dumps(x["attacker"]["answers"] if x["attacker"] else None),
        )
    console.print(t)


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = r["attacks"]
    names = [x["attack"] for x in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    xs = range(len(rows))
    quiet = [x["honest_quiet"]["p50_ms"] or 0 for x in rows]
    under = [x["honest_under_attack"]["p50_ms"] or 0 for x in rows]
    base = {x["attack"]: x for x in r.get("baseline_attacks", [])}
    width = 0.27 if base else 0.4
    axes[0].bar([i - width / 2 for i in xs], quiet, width, label="quiet")
    axes[0].bar([i + width / 2 for i in xs], under, width, label="under attack")
    if base:
        old = [(base[n]["honest_under_attack"]["p50_ms"] or 0) if n in base else 0 for n in names]
        rev = r["baseline"]["revision"] or r["baseline"]["source"]
        axes[0].bar([i + 1.5 * width for i in xs], old, width, label=f"under attack, {rev} (before)")
    axes[0].plot([i for i in xs], [2 * q for q in quiet], "k_", markersize=20, label="2x quiet (target)")
    axes[0].set_ylabel("honest p50 latency (ms, log)")
    axes[0].set_yscale("log")
    axes[0].legend()

    def growth(x: dict[str, Any], panel: int) -> float:
        if panel == 1:
            return x["rss_mb"]["during"] - x["rss_mb"]["before"]
        return x["audit_disk_bytes"]["growth"] / 2**20

    labels = {1: "gateway RSS growth during the attack (MB)", 2: "audit database growth (MiB)"}
    for panel, label in labels.items():
        if base:
            axes[panel].bar([i - 0.2 for i in xs], [growth(x, panel) for x in rows], 0.4, label="this tree")
            then = [growth(base[n], panel) if n in base else 0 for n in names]
            axes[panel].bar([i + 0.2 for i in xs], then, 0.4, label="before", color="tab:green")
            axes[panel].legend()
        else:
            axes[panel].bar(xs, [growth(x, panel) for x in rows])
        axes[panel].set_ylabel(label)
    for ax in axes:
        ax.set_xticks(list(xs), names, rotation=15)
    fig.suptitle(f"issue 19 availability attacks, {r['date']}, {r['machine']['cpus']} CPUs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
