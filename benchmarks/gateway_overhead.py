"""What does the gateway cost? Direct vs `wave serve` (1 and N worker processes) vs a bare aiohttp
pass-through vs nginx (plain reverse proxy, the floor) vs LiteLLM proxy, all in front of the same
fast fake upstreams, measured in one run, interleaved.

    .venv/bin/python benchmarks/gateway_overhead.py            # full run (~10 min incl. LiteLLM install)
    .venv/bin/python benchmarks/gateway_overhead.py --quick    # fewer rounds, shorter wrk
    .venv/bin/python benchmarks/gateway_overhead.py --workers 1 2   # wave with 1 and 2 workers
    .venv/bin/python benchmarks/gateway_overhead.py --soak 600 # also: RSS of the gateway over 10 minutes
    .venv/bin/python benchmarks/gateway_overhead.py --postgres --no-litellm \
        --out benchmarks/results/gateway_overhead_postgres.json   # wave with SQLite vs with PostgreSQL
    .venv/bin/python benchmarks/gateway_overhead.py --baseline /tmp/wave-main --wrk-rounds 3
                                    # this tree vs another (e.g. `git worktree add /tmp/wave-main main`)
    .venv/bin/python benchmarks/gateway_overhead.py --console --wrk-rounds 3
                                    # `wave` (console mounted, a chromium tab open on its Fleet page
                                    # all along) vs `noconsole` (the same tree, --no-console)

Upstreams: non-streaming answers come from an nginx `return 200` of a fixed chat completion (the
fastest upstream this machine has, so no proxy is limited by it); streamed answers (32 content
chunks + usage + [DONE]) from tests/gateway/fake_upstream.py with no delays. Every proxy is one
process (nginx: one worker; LiteLLM: one worker; wave: one uvicorn process, `wave-xN`: N workers;
`bare`: benchmarks/bare_passthrough.py, a raw ASGI app under the same uvicorn making one pooled
aiohttp call) with auth on where it has auth (wave: the full security guard with an API key,
audit log on; LiteLLM: its master key). `uvicorn-fixed` (wrk only) is that uvicorn answering a
fixed body with no upstream: what serving HTTP in Python costs before any proxying. With
`--postgres`, `wave-pg` is the same one-process gateway with its keys and audit log in a
PostgreSQL server this script starts (Debian's, as tests/state_support.py runs it; as root) instead
of SQLite, and both `wave` and `wave-pg` are called with a key made by `wave keys create` (not the
bootstrap key), so the key store is on every request's path; the summary's `postgres_vs_sqlite`
compares them. With `--baseline DIR`, a second Wave source tree is served beside this one by the
same venv (its `src/` first on PYTHONPATH) as `base` (`base-xN`), every measurement of it
interleaved with this tree's, and the summary gives this tree's ratios to it: old vs new code in
one run.

Latency: a closed loop at concurrency 1/16/64/256 per path, rounds interleaved in shuffled order;
added latency = the path's percentile minus the direct path's in the same run. Throughput: wrk
(non-streaming and streaming), one connection per concurrency slot; during each wrk run the CPU
time (user + system) of the proxy's processes, of the upstreams and of wrk itself is read and
divided by the requests wrk completed (`cpu_us_per_request`). Results, with the command, go to
benchmarks/results/gateway_overhead.json and a PNG plot beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from waveidp.loopback import free_port, wait_http

REPO = Path(__file__).resolve().parent.parent
FAKE = REPO / "tests" / "gateway" / "fake_upstream.py"
BARE = REPO / "benchmarks" / "bare_passthrough.py"
WAVE = Path(sys.executable).with_name("wave")
RESULTS = REPO / "benchmarks" / "results"
KEY = "bench-key-0123456789abcdefghijkl"  # passes check_strength
LITELLM_KEY = "sk-bench-0123456789"
STREAM_TOKENS = 32
SOAK_PERIOD_S = 0.1
PLAIN_MODEL, STREAM_MODEL = "bench-plain", "bench-stream"
CHAT_BODY = {
    "model": PLAIN_MODEL,
    "messages": [{"role": "user", "content": "Hello there, how are you?"}],
    "max_tokens": 16,
}
STATIC_ANSWER = json.dumps(
    {
        "id": "chatcmpl-static",
        "object": "chat.completion",
        "created": 0,
        "model": PLAIN_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "I am fine, thank you for asking."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }
)
MODELS_ANSWER = json.dumps(
    {"object": "list", "data": [{"id": PLAIN_MODEL, "object": "model", "created": 0, "owned_by": "static"}]}
)
console = Console()


def wave_name(workers: int, label: str = "wave") -> str:
    return label if workers == 1 else f"{label}-x{workers}"


def source_env(src: Path | None) -> dict[str, str]:
    """The environment that makes `wave` run the Wave source tree `src` (None: the installed one)."""
    return {"PYTHONPATH": str(src / "src")} if src is not None else {}


class Procs:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.work / f"{name}.log", "wb")  # noqa: SIM115
        p = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            cwd=self.work,
        )
        self.procs.append(p)
        return p

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)


def nginx_conf(work: Path, static_port: int, proxies: dict[int, int]) -> Path:
    user = "user root root;" if os.geteuid() == 0 else ""
    servers = []
    for listen, upstream in proxies.items():
        servers.append(f"""
    upstream up{listen} {{ server 127.0.0.1:{upstream}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{listen} backlog=4096;
        location / {{
            proxy_pass http://up{listen};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}""")
    text = f"""{user}
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-tmp/body;
    proxy_temp_path {work}/nginx-tmp/proxy;
    fastcgi_temp_path {work}/nginx-tmp/fastcgi;
    uwsgi_temp_path {work}/nginx-tmp/uwsgi;
    scgi_temp_path {work}/nginx-tmp/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{static_port} backlog=4096;
        default_type application/json;
        location = /v1/chat/completions {{ return 200 '{STATIC_ANSWER}'; }}
        location = /v1/models {{ return 200 '{MODELS_ANSWER}'; }}
        location = /health {{ return 200 '{{"status":"ok"}}'; }}
    }}
    {"".join(servers)}
}}
"""
    (work / "nginx-tmp").mkdir(exist_ok=True)
    path = work / "nginx.conf"
    path.write_text(text)
    return path


def ensure_litellm(work: Path) -> Path | None:
    venv = work / "litellm-venv"
    exe = venv / "bin" / "litellm"
    if exe.exists():
        return exe
    console.print("installing LiteLLM proxy into", venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]"], capture_output=True)
    if r.returncode != 0 or not exe.exists():
        console.print("[red]LiteLLM install failed[/]", r.stderr.decode()[-500:])
        return None
    return exe


def litellm_version(exe: Path) -> str:
    r = subprocess.run([str(exe.with_name("pip")), "show", "litellm"], capture_output=True, text=True)
    m = re.search(r"^Version: (.+)$", r.stdout, re.M)
    return m.group(1) if m else "?"


# ---------------------------------------------------------------- client side


async def one(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    stream: bool,
) -> tuple[float, float | None, int]:
    """(seconds to last byte, seconds to first content chunk, content chunks) of one request."""
    t0 = time.perf_counter()
    first = None
    chunks = 0
    async with session.post(url, data=body, headers=headers) as r:
        if r.status != 200:
            raise RuntimeError(f"{url}: HTTP {r.status}: {(await r.text())[:200]}")
        if not stream:
            await r.read()
        else:
            async for line in r.content:
                if line.startswith(b"data: {") and b'"content"' in line:
                    chunks += 1
                    if first is None:
                        first = time.perf_counter() - t0
    return time.perf_counter() - t0, first, chunks


async def closed_loop(
    url: str, headers: dict[str, str], stream: bool, concurrency: int, n: int, max_s: float
) -> dict:
    body = json.dumps(
        {
            **CHAT_BODY,
            "model": STREAM_MODEL if stream else PLAIN_MODEL,
            "stream": stream,
            "max_tokens": STREAM_TOKENS if stream else 16,
        }
    ).encode()
    conn = aiohttp.TCPConnector(limit=0, force_close=False)
    lat: list[float] = []
    ttft: list[float] = []
    errors = 0
    deadline = time.perf_counter() + max_s
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=60)) as s:
        await one(s, url, body, headers, stream)  # warm the connection
        remaining = [n]

        async def worker() -> None:
            nonlocal errors
            while remaining[0] > 0 and time.perf_counter() < deadline:
                remaining[0] -= 1
                try:
                    total, first, _ = await one(s, url, body, headers, stream)
                except Exception:
                    errors += 1
                    continue
                lat.append(total)
                if first is not None:
                    ttft.append(first)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"latencies": lat, "ttfts": ttft, "errors": errors, "wall_s": wall}


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def own_cpu_s() -> float:
    """CPU seconds of this process (the closed-loop load generator) so far."""
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children so far."""
    p = psutil.Process(pid)
    total = 0.0
    for q in [p, *p.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = q.cpu_times()
            total += t.user + t.system
    return total


def wrk(
    url: str,
    headers: dict[str, str],
    stream: bool,
    connections: int,
    seconds: int,
    work: Path,
    cpu_pids: dict[str, int] | None = None,
) -> dict:
    """wrk's requests/s, and the CPU each process of `cpu_pids` (and wrk itself) spent per request."""
    body = json.dumps(
        {
            **CHAT_BODY,
            "model": STREAM_MODEL if stream else PLAIN_MODEL,
            "stream": stream,
            "max_tokens": STREAM_TOKENS if stream else 16,
        }
    )
    script = work / "post.lua"
    hdrs = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
        f'wrk.headers["Content-Type"] = "application/json"\n{hdrs}'
    )
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    cpu_pids = cpu_pids or {}
    before = {role: cpu_s(pid) for role, pid in cpu_pids.items()}
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = {role: cpu_s(pid) - before[role] for role, pid in cpu_pids.items()}
    spent["wrk"] = (wrk_after.ru_utime + wrk_after.ru_stime) - (wrk_before.ru_utime + wrk_before.ru_stime)
    done = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: (.+)", out)
    return {
        "requests_per_s": float(rps.group(1)) if rps else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errs.group(1) if errs else None,
        "cpu_us_per_request": {role: round(sec / int(done.group(1)) * 1e6, 1) for role, sec in spent.items()}
        if done and int(done.group(1))
        else None,
        "command": " ".join(cmd),
    }


# ---------------------------------------------------------------- the run


CONSOLE_ADMIN_KEY = "bench-console-admin-0123456789abcdef"


def stored_key(env: dict[str, str], name: str) -> str:
    """A key from `wave keys create` in the key store `env` names (WAVE_HOME or WAVE_DATABASE_URL)."""
    out = subprocess.run(
        [str(WAVE), "keys", "create", name, "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(out.stdout)["key"])


@contextlib.contextmanager
def servers(
    work: Path,
    with_litellm: bool,
    workers: list[int],
    baseline: Path | None = None,
    postgres: bool = False,
    console_ab: bool = False,
) -> Iterator[dict]:
    procs = Procs(work)
    pg = None
    try:
        static_port, sse_port = free_port(), free_port()
        nginx_plain, nginx_stream = free_port(), free_port()
        conf = nginx_conf(work, static_port, {nginx_plain: static_port, nginx_stream: sse_port})
        nginx = procs.start("nginx", ["nginx", "-p", str(work), "-c", str(conf)])
        sse = procs.start(
            "sse-upstream",
            [
                sys.executable,
                str(FAKE),
                "--port",
                str(sse_port),
                "--name",
                "sse",
                "--model",
                STREAM_MODEL,
                "--default-tokens",
                str(STREAM_TOKENS),
            ],
        )
        wait_http(f"http://127.0.0.1:{static_port}/health", proc=nginx)
        wait_http(f"http://127.0.0.1:{sse_port}/health", proc=sse)
        bare_port, fixed_port = free_port(), free_port()
        bare = procs.start(
            "bare",
            [
                sys.executable,
                str(BARE),
                "--port",
                str(bare_port),
                "--upstream",
                f"http://127.0.0.1:{static_port}",
                "--stream-upstream",
                f"http://127.0.0.1:{sse_port}",
            ],
        )
        fixed = procs.start(
            "uvicorn-fixed", [sys.executable, str(BARE), "--port", str(fixed_port), "--fixed"]
        )
        waves: dict[str, tuple[int, subprocess.Popen]] = {}
        startup: dict[str, float] = {}
        trees: list[tuple[str, Path | None, list[str]]] = [("wave", None, [])]
        if baseline is not None:
            trees.append(("base", baseline, []))
        if console_ab:
            trees.append(("noconsole", None, ["--no-console"]))
        for n in workers:
            for label, src, extra in trees:
                name = wave_name(n, label)
                port = free_port()
                t0 = time.monotonic()
                proc = procs.start(
                    name,
                    [
                        str(WAVE),
                        "serve",
                        "--port",
                        str(port),
                        "--upstream",
                        f"http://127.0.0.1:{static_port}",
                        "--engine",
                        "openai",
                        "--upstream",
                        f"http://127.0.0.1:{sse_port}",
                        *(["--workers", str(n)] if n != 1 else []),
                        *extra,
                    ],
                    env={
                        "WAVE_API_KEY": KEY,
                        "WAVE_ADMIN_KEY": CONSOLE_ADMIN_KEY,
                        "WAVE_HOME": str(work / f"{name}-home"),
                        **source_env(src),
                    },
                )
                wait_http(f"http://127.0.0.1:{port}/ready", proc=proc)
                while n > 1 and b"gateway ready" not in (work / f"{name}.log").read_bytes():
                    time.sleep(0.01)  # the parent's ready line: every worker listens
                startup[name] = time.monotonic() - t0
                waves[name] = (port, proc)
        if console_ab:  # a browser tab polls `wave`'s Fleet page for the whole run
            tab = procs.start(
                "console-tab",
                [sys.executable, str(REPO / "benchmarks" / "console_tab.py"), "--url",
                 f"http://127.0.0.1:{waves['wave'][0]}", "--admin-key", CONSOLE_ADMIN_KEY],
            )  # fmt: skip
            while b"console tab open" not in (work / "console-tab.log").read_bytes():
                if tab.poll() is not None:
                    raise RuntimeError(f"the console tab did not open: see {work / 'console-tab.log'}")
                time.sleep(0.1)
        keys = {name: KEY for name in waves}
        if postgres:
            sys.path.insert(0, str(REPO / "tests"))
            from state_support import Postgres

            pg = Postgres.create("127.0.0.1", free_port(), "bench-pg-password")
            keys["wave"] = stored_key({"WAVE_HOME": str(work / "wave-home")}, "bench")
            port = free_port()
            env = {"WAVE_API_KEY": KEY, "WAVE_HOME": str(work / "wave-pg-home"), "WAVE_DATABASE_URL": pg.url}
            keys["wave-pg"] = stored_key(env, "bench")
            t0 = time.monotonic()
            proc = procs.start(
                "wave-pg",
                [str(WAVE), "serve", "--port", str(port), "--upstream", f"http://127.0.0.1:{static_port}",
                 "--engine", "openai", "--upstream", f"http://127.0.0.1:{sse_port}"],
                env=env,
            )  # fmt: skip
            wait_http(f"http://127.0.0.1:{port}/ready", proc=proc)
            startup["wave-pg"] = time.monotonic() - t0
            waves["wave-pg"] = (port, proc)
        wait_http(f"http://127.0.0.1:{bare_port}/health", proc=bare, ok=(200, 404, 405))
        wait_http(f"http://127.0.0.1:{fixed_port}/health", proc=fixed)
        paths = {
            "direct": {
                "plain": f"http://127.0.0.1:{static_port}",
                "stream": f"http://127.0.0.1:{sse_port}",
                "headers": {},
            },
            "bare": {
                "plain": f"http://127.0.0.1:{bare_port}",
                "stream": f"http://127.0.0.1:{bare_port}",
                "headers": {},
                "pid": bare.pid,
            },
            **{
                name: {
                    "plain": f"http://127.0.0.1:{port}",
                    "stream": f"http://127.0.0.1:{port}",
                    "headers": {"Authorization": f"Bearer {keys[name]}"},
                    "pid": proc.pid,
                }
                for name, (port, proc) in waves.items()
            },
            "nginx": {
                "plain": f"http://127.0.0.1:{nginx_plain}",
                "stream": f"http://127.0.0.1:{nginx_stream}",
                "headers": {},
            },
        }
        info: dict = {
            "wave_startup_s": startup,
            "fixed": {"url": f"http://127.0.0.1:{fixed_port}", "pid": fixed.pid},
            "upstream_pids": {"nginx": nginx.pid, "sse_upstream": sse.pid},
        }
        if with_litellm:
            exe = ensure_litellm(work)
            if exe is not None:
                port = free_port()
                cfg = work / "litellm.yaml"
                cfg.write_text(
                    json.dumps(
                        {
                            "model_list": [
                                {
                                    "model_name": PLAIN_MODEL,
                                    "litellm_params": {
                                        "model": f"openai/{PLAIN_MODEL}",
                                        "api_base": f"http://127.0.0.1:{static_port}/v1",
                                        "api_key": "none",
                                    },
                                },
                                {
                                    "model_name": STREAM_MODEL,
                                    "litellm_params": {
                                        "model": f"openai/{STREAM_MODEL}",
                                        "api_base": f"http://127.0.0.1:{sse_port}/v1",
                                        "api_key": "none",
                                    },
                                },
                            ],
                            "general_settings": {"master_key": LITELLM_KEY},
                            "litellm_settings": {"telemetry": False},
                        }
                    )
                )
                ll = procs.start(
                    "litellm",
                    [
                        str(exe),
                        "--config",
                        str(cfg),
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--num_workers",
                        "1",
                    ],
                    env={"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"},
                )
                wait_http(f"http://127.0.0.1:{port}/health/liveliness", timeout=180, proc=ll)
                paths["litellm"] = {
                    "plain": f"http://127.0.0.1:{port}",
                    "stream": f"http://127.0.0.1:{port}",
                    "headers": {"Authorization": f"Bearer {LITELLM_KEY}"},
                    "pid": ll.pid,
                    "version": litellm_version(exe),
                }
        info["paths"] = paths
        yield info
    finally:
        procs.stop_all()
        if pg is not None:
            pg.destroy()


def rss_mb(pid: int) -> float:
    p = psutil.Process(pid)
    return sum(c.memory_info().rss for c in [p, *p.children(recursive=True)]) / 2**20


def measure_startup(
    work: Path, upstream: str, times: int, workers: int = 1, src: Path | None = None
) -> list[float]:
    """Seconds from `wave serve` to /ready answering (with workers: to the parent's ready line,
    printed once every worker listens)."""
    out = []
    for _ in range(times):
        port = free_port()
        log = work / "startup.log"
        with open(log, "wb") as sink:
            p = subprocess.Popen(
                [str(WAVE), "serve", "--port", str(port), "--upstream", upstream, "--engine", "openai"]
                + (["--workers", str(workers)] if workers > 1 else []),
                env={
                    **os.environ,
                    "WAVE_API_KEY": KEY,
                    "WAVE_HOME": str(work / "wave-home"),
                    **source_env(src),
                },
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            t = wait_http(f"http://127.0.0.1:{port}/ready", proc=p)
            t0 = time.monotonic() - t
            while workers > 1 and b"gateway ready" not in log.read_bytes():
                if p.poll() is not None or time.monotonic() - t0 > 30:
                    raise RuntimeError(f"wave serve --workers {workers} did not print its ready line")
                time.sleep(0.005)
            out.append(time.monotonic() - t0)
        finally:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--soak", type=int, default=0, help="seconds of steady load on wave to watch its RSS")
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/wave-gateway-bench"))
    ap.add_argument("--out", type=Path, default=RESULTS / "gateway_overhead.json")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument(
        "--workers", type=int, nargs="+", default=[1], help="run wave once per count (e.g. 1 2), side by side"
    )
    ap.add_argument("--wrk-only", action="store_true", help="skip the closed-loop latency rounds")
    ap.add_argument(
        "--postgres", action="store_true", help="also wave-pg: keys and the audit log in PostgreSQL (as root)"
    )
    ap.add_argument(
        "--wrk-rounds", type=int, default=1, help="repeat the wrk runs; the summary takes medians"
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        help="another Wave source tree (e.g. a git worktree of main) to serve as `base` beside this one",
    )
    ap.add_argument(
        "--console",
        action="store_true",
        help="also `noconsole` (this tree with --no-console) beside `wave`, which has a console tab open",
    )
    args = ap.parse_args()
    if not shutil.which("nginx") or not shutil.which("wrk"):
        sys.exit("needs nginx and wrk (Debian packages nginx-light, wrk): make system-deps")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    rounds = 2 if args.quick else 3
    wrk_s = 3 if args.quick else 5
    result: dict = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_at_start": os.getloadavg(),
        },
        "method": __doc__.split("\n\n", 2)[2],
    }
    if args.baseline is not None:
        if not (args.baseline / "src" / "waveidp").is_dir():
            sys.exit(f"--baseline {args.baseline}: no src/waveidp there")
        result["baseline"] = {"source": str(args.baseline), "revision": git_revision(args.baseline)}
        result["revision"] = git_revision(REPO)
    with servers(
        args.work_dir, not args.no_litellm, args.workers, args.baseline, args.postgres, args.console
    ) as info:
        paths = info["paths"]
        result["wave_startup_s"] = info["wave_startup_s"]
        if "litellm" in paths:
            result["litellm_version"] = paths["litellm"]["version"]
        result["rss_mb_before"] = {n: round(rss_mb(p["pid"]), 1) for n, p in paths.items() if "pid" in p}
        samples: dict = {}
        jobs = [(mode, c) for mode in ("plain", "stream") for c in args.concurrency]
        if args.wrk_only:
            jobs = []
        with Progress(console=console) as progress:
            task = progress.add_task("latency rounds", total=rounds * len(jobs) * len(paths))
            for _ in range(rounds):
                for mode, c in jobs:
                    order = list(paths)
                    random.shuffle(order)
                    for name in order:
                        p = paths[name]
                        path = "/v1/chat/completions"
                        n = max(100, 4 * c) if not args.quick else max(50, 2 * c)
                        max_s = 6.0 if name == "litellm" else 4.0
                        upstream_pid = info["upstream_pids"]["nginx" if mode == "plain" else "sse_upstream"]
                        cpu_before = (
                            own_cpu_s(),
                            cpu_s(p["pid"]) if "pid" in p else 0.0,
                            cpu_s(upstream_pid),
                        )
                        r = asyncio.run(
                            closed_loop(p[mode] + path, p["headers"], mode == "stream", c, n, max_s)
                        )
                        cpu_after = (own_cpu_s(), cpu_s(p["pid"]) if "pid" in p else 0.0, cpu_s(upstream_pid))
                        key = (name, mode, c)
                        s = samples.setdefault(
                            key,
                            {
                                "latencies": [],
                                "ttfts": [],
                                "errors": 0,
                                "n": 0,
                                "wall": 0.0,
                                "cpu": [0.0] * 3,
                            },
                        )
                        s["cpu"] = [
                            t + b - a for t, a, b in zip(s["cpu"], cpu_before, cpu_after, strict=True)
                        ]
                        s["latencies"] += r["latencies"]
                        s["ttfts"] += r["ttfts"]
                        s["errors"] += r["errors"]
                        s["n"] += len(r["latencies"])
                        s["wall"] += r["wall_s"]
                        progress.advance(task)
        lat_rows = []
        for (name, mode, c), s in sorted(samples.items()):
            d = samples[("direct", mode, c)]
            row = {
                "path": name,
                "mode": mode,
                "concurrency": c,
                "requests": s["n"],
                "errors": s["errors"],
                "closed_loop_rps": round(s["n"] / s["wall"], 1) if s["wall"] else None,
                # CPU per request of the load generator (this process), the proxy and the upstream
                "cpu_us_per_request": dict(
                    zip(
                        ("client", "proxy", "upstream"),
                        (round(x / s["n"] * 1e6, 1) for x in s["cpu"]),
                        strict=True,
                    )
                )
                if s["n"]
                else None,
            }
            for label, xs, dx in (
                ("latency", s["latencies"], d["latencies"]),
                ("ttft", s["ttfts"], d["ttfts"]),
            ):
                for q in (50, 99):
                    v, dv = pct(xs, q), pct(dx, q)
                    row[f"{label}_p{q}_ms"] = round(v * 1e3, 3) if v is not None else None
                    row[f"added_{label}_p{q}_ms"] = (
                        round((v - dv) * 1e3, 3) if v is not None and dv is not None else None
                    )
            lat_rows.append(row)
        result["latency"] = lat_rows
        wrk_rows = []
        with Progress(console=console) as progress:
            conns = [64, 256] if not args.quick else [64]
            task = progress.add_task("wrk", total=args.wrk_rounds * (len(paths) * 2 * len(conns) + 1))
            for rnd in range(args.wrk_rounds):
                # the floor under every Python path: uvicorn + uvloop + httptools answering a fixed body
                w = wrk(
                    info["fixed"]["url"] + "/v1/chat/completions",
                    {},
                    False,
                    64,
                    wrk_s,
                    args.work_dir,
                    {"proxy": info["fixed"]["pid"]},
                )
                w.update(path="uvicorn-fixed", mode="plain", connections=64, round=rnd)
                wrk_rows.append(w)
                progress.advance(task)
                for mode in ("plain", "stream"):
                    for c in conns:
                        order = list(paths)
                        random.shuffle(order)  # no path always runs right after another
                        for name in order:
                            p = paths[name]
                            pids = {**info["upstream_pids"], **({"proxy": p["pid"]} if "pid" in p else {})}
                            w = wrk(
                                p[mode] + "/v1/chat/completions",
                                p["headers"],
                                mode == "stream",
                                c,
                                wrk_s,
                                args.work_dir,
                                pids,
                            )
                            w.update(path=name, mode=mode, connections=c, round=rnd)
                            if mode == "stream" and w["requests_per_s"]:
                                w["content_chunks_per_s"] = round(w["requests_per_s"] * STREAM_TOKENS)
                            wrk_rows.append(w)
                            progress.advance(task)
        result["wrk"] = wrk_rows
        result["rss_mb_after"] = {n: round(rss_mb(p["pid"]), 1) for n, p in paths.items() if "pid" in p}
        if args.soak:
            result["soak"] = soak(paths["wave"], args.soak)
        result["wave_startup_runs_s"] = measure_startup(args.work_dir, paths["direct"]["plain"], 5)
        result["wave_startup_runs_s_by_workers"] = {
            n: measure_startup(args.work_dir, paths["direct"]["plain"], 5, n) for n in args.workers
        }
        if args.baseline is not None:
            result["base_startup_runs_s_by_workers"] = {
                n: measure_startup(args.work_dir, paths["direct"]["plain"], 5, n, args.baseline)
                for n in args.workers
            }
    result["summary"] = summarise(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    show(result)
    plot(result, args.out.with_suffix(".png"))
    console.print(f"results: {args.out}")


def soak(p: dict, seconds: int) -> dict:
    """Steady load (16 plain + 4 streaming clients, each at most 10 requests/s: the machine is shared)
    on wave; RSS sampled every 5 s."""
    samples: list[tuple[float, float]] = []

    async def run() -> int:
        stop = time.perf_counter() + seconds
        done = 0
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            plain = json.dumps({**CHAT_BODY}).encode()
            stream = json.dumps({**CHAT_BODY, "model": STREAM_MODEL, "stream": True}).encode()

            async def worker(body: bytes, is_stream: bool) -> None:
                nonlocal done
                while time.perf_counter() < stop:
                    t = time.perf_counter()
                    await one(s, p["plain"] + "/v1/chat/completions", body, p["headers"], is_stream)
                    done += 1
                    await asyncio.sleep(max(0.0, SOAK_PERIOD_S - (time.perf_counter() - t)))

            async def sampler() -> None:
                t0 = time.perf_counter()
                while time.perf_counter() < stop:
                    samples.append((round(time.perf_counter() - t0, 1), round(rss_mb(p["pid"]), 2)))
                    await asyncio.sleep(5)

            await asyncio.gather(
                sampler(),
                *(worker(plain, False) for _ in range(16)),
                *(worker(stream, True) for _ in range(4)),
            )
        return done

    with console.status(f"soak: {seconds}s of load on wave"):
        n = asyncio.run(run())
    warm = [r for t, r in samples if t >= 30] or [r for _, r in samples]
    return {
        "seconds": seconds,
        "requests": n,
        "rss_mb_samples": samples,
        "rss_mb_after_warmup": warm[0],
        "rss_mb_end": warm[-1],
        "growth_pct": round((warm[-1] / warm[0] - 1) * 100, 2),
    }


def summarise(r: dict) -> dict:
    def lat(path: str, mode: str, c: int, key: str) -> Any:
        return next(
            (x[key] for x in r["latency"] if (x["path"], x["mode"], x["concurrency"]) == (path, mode, c)),
            None,
        )

    def rps(path: str, mode: str, conns: int = 64) -> float | None:
        xs = [
            x["requests_per_s"]
            for x in r["wrk"]
            if (x["path"], x["mode"], x["connections"]) == (path, mode, conns) and x["requests_per_s"]
        ]
        return statistics.median(xs) if xs else None

    proxies = [p for p in dict.fromkeys(x["path"] for x in r["wrk"]) if p not in ("direct", "uvicorn-fixed")]

    def cpu(path: str) -> dict | None:
        rows = [
            x["cpu_us_per_request"]
            for x in r["wrk"]
            if (x["path"], x["mode"], x["connections"]) == (path, "plain", 64) and x["cpu_us_per_request"]
        ]
        return {k: round(statistics.median(row[k] for row in rows), 1) for k in rows[0]} if rows else None

    s: dict = {
        "added_p50_ms_c1": {p: lat(p, "plain", 1, "added_latency_p50_ms") for p in proxies},
        "added_p50_ms_c64": {p: lat(p, "plain", 64, "added_latency_p50_ms") for p in proxies},
        "added_p99_ms_c64": {p: lat(p, "plain", 64, "added_latency_p99_ms") for p in proxies},
        "added_ttft_p50_ms_c1": {p: lat(p, "stream", 1, "added_ttft_p50_ms") for p in proxies},
        "wrk_rps_c64": {p: rps(p, "plain") for p in ("direct", "uvicorn-fixed", *proxies)},
        "wrk_stream_chunks_per_s_c64": {
            p: (rps(p, "stream") or 0) * STREAM_TOKENS for p in ("direct", *proxies)
        },
        "cpu_us_per_request_wrk_c64": {p: cpu(p) for p in ("direct", "uvicorn-fixed", *proxies)},
        "closed_loop_c64": {
            p: {
                "requests_per_s": lat(p, "plain", 64, "closed_loop_rps"),
                "cpu_us_per_request": lat(p, "plain", 64, "cpu_us_per_request"),
            }
            for p in ("direct", *proxies)
        },
        "wave_startup_s_median": statistics.median(r["wave_startup_runs_s"]),
        "wave_startup_s_median_by_workers": {
            n: round(statistics.median(xs), 3)
            for n, xs in r.get("wave_startup_runs_s_by_workers", {}).items()
        },
        "wave_rss_mb": r["rss_mb_after"].get("wave"),
        "wave_rss_mb_all": {p: v for p, v in r["rss_mb_after"].items() if p.startswith("wave")},
    }
    w, n, ll = (s["wrk_rps_c64"].get(p) for p in ("wave", "nginx", "litellm"))
    a1, a64, n64 = s["added_p50_ms_c1"]["wave"], s["added_p50_ms_c64"]["wave"], s["added_p50_ms_c64"]["nginx"]
    t1 = s["added_ttft_p50_ms_c1"]["wave"]
    s["targets"] = {
        "added_p50_c1_at_most_1ms": None if a1 is None else a1 <= 1.0,
        "added_p50_c64_at_most_3x_nginx": None if a64 is None or n64 is None else a64 <= 3 * max(n64, 0.0),
        "added_ttft_c1_at_most_1ms": None if t1 is None else t1 <= 1.0,
        "wrk_rps_at_least_15pct_of_nginx": None if not (w and n) else w >= 0.15 * n,
        "wrk_rps_at_least_50x_litellm": None if not (w and ll) else w >= 50 * ll,
        "stream_chunks_per_s_at_least_5000": s["wrk_stream_chunks_per_s_c64"]["wave"] >= 5000,
        "rss_under_100mb": None if s["wave_rss_mb"] is None else s["wave_rss_mb"] < 100,
        "startup_under_2s": s["wave_startup_s_median"] < 2.0,
    }
    if "soak" in r:
        s["targets"]["rss_growth_under_5pct"] = r["soak"]["growth_pct"] < 5
    if "baseline" in r:
        s["versus_baseline"] = versus_baseline(r, proxies, lat)
    if "noconsole" in proxies:
        s["versus_noconsole"] = versus_baseline(r, proxies, lat, "noconsole")
    s["ratios"] = {
        "wave_rps_over_nginx": round(w / n, 3) if w and n else None,
        "wave_rps_over_litellm": round(w / ll, 1) if w and ll else None,
    }
    if "wave-pg" in proxies:
        s["postgres_vs_sqlite"] = postgres_vs_sqlite(r, lat)
        ratio = s["postgres_vs_sqlite"]["rps_ratio_median"]
        s["targets"]["postgres_within_10pct_of_sqlite_rps"] = None if ratio is None else ratio >= 0.9
    for p in proxies:
        if p.startswith("wave-x"):
            pw, pa = s["wrk_rps_c64"][p], s["added_p50_ms_c64"][p]
            s["ratios"][f"{p}_rps_over_nginx"] = round(pw / n, 3) if pw and n else None
            s["targets"][f"{p}_added_p50_c64_at_most_3x_nginx"] = (
                None if pa is None or n64 is None else pa <= 3 * max(n64, 0.0)
            )
    return s


def postgres_vs_sqlite(r: dict, lat: Any) -> dict:
    """`wave-pg` (keys and audit in PostgreSQL) against `wave` (SQLite): wrk requests/s and proxy CPU
    per request at 64 connections, each round's pair (the two ran back to back), and the closed
    loop's added p50 latency."""

    def wrk_rows(path: str) -> dict[int, dict]:
        return {
            x.get("round", 0): x
            for x in r["wrk"]
            if (x["path"], x["mode"], x["connections"]) == (path, "plain", 64) and x["requests_per_s"]
        }

    pg, sq = wrk_rows("wave-pg"), wrk_rows("wave")
    rounds = sorted(set(pg) & set(sq))
    rps = [pg[i]["requests_per_s"] / sq[i]["requests_per_s"] for i in rounds]
    cpu = [
        pg[i]["cpu_us_per_request"]["proxy"] / sq[i]["cpu_us_per_request"]["proxy"]
        for i in rounds
        if (pg[i].get("cpu_us_per_request") or {}).get("proxy")
        and (sq[i].get("cpu_us_per_request") or {}).get("proxy")
    ]
    concurrencies = sorted({x["concurrency"] for x in r["latency"]})
    return {
        "wrk_rps_c64": {"sqlite": [sq[i]["requests_per_s"] for i in rounds],
                        "postgres": [pg[i]["requests_per_s"] for i in rounds]},
        "rps_ratio_by_round": [round(x, 3) for x in rps],
        "rps_ratio_median": round(statistics.median(rps), 3) if rps else None,
        "proxy_cpu_ratio_by_round": [round(x, 3) for x in cpu],
        "proxy_cpu_ratio_median": round(statistics.median(cpu), 3) if cpu else None,
        "added_p50_ms": {
            f"c{c}": {"sqlite": lat("wave", "plain", c, "added_latency_p50_ms"),
                      "postgres": lat("wave-pg", "plain", c, "added_latency_p50_ms")}
            for c in concurrencies
        },
    }  # fmt: skip


def versus_baseline(r: dict, proxies: list[str], lat: Any, label: str = "base") -> dict:
    """This tree (`wave`, `wave-xN`) over the baseline tree (`base`, `base-xN`), or over the same tree
    without its console (`label` noconsole): wrk requests/s and the proxy's CPU per request round by
    round (the two ran back to back within each round), and the closed loop's added latencies."""

    def by_round(path: str, mode: str, conns: int, key: str) -> dict[int, float]:
        """Rounds with errors answered (non-2xx: an overloaded upstream) are left out: cheap error
        answers make a different workload."""
        out = {}
        for x in r["wrk"]:
            if (x["path"], x["mode"], x["connections"]) == (path, mode, conns) and x["requests_per_s"]:
                if x["non_2xx"]:
                    continue
                out[x.get("round", 0)] = (
                    x["requests_per_s"] if key == "rps" else (x["cpu_us_per_request"] or {}).get("proxy")
                )
        return out

    def ratios(new: str, old: str, mode: str, conns: int, key: str) -> dict:
        a, b = by_round(new, mode, conns, key), by_round(old, mode, conns, key)
        rs = [round(a[k] / b[k], 3) for k in sorted(a) if k in b and a[k] and b[k]]
        return {"per_round": rs, "median": statistics.median(rs) if rs else None}

    out: dict = {}
    for new in [p for p in proxies if p == "wave" or p.startswith("wave-x")]:
        old = label + new[len("wave") :]
        if old not in proxies:
            continue
        conns = sorted({x["connections"] for x in r["wrk"] if x["path"] == new})
        out[f"{new}_over_{old}"] = {
            **{
                f"wrk_rps_{mode}_c{c}": ratios(new, old, mode, c, "rps")
                for mode in ("plain", "stream")
                for c in conns
            },
            **{
                f"proxy_cpu_us_per_request_{mode}_c{c}": ratios(new, old, mode, c, "cpu")
                for mode in ("plain", "stream")
                for c in conns
            },
            **{
                f"added_{what}_p50_ms_c{c}": {
                    new: lat(new, mode, c, f"added_{what}_p50_ms"),
                    old: lat(old, mode, c, f"added_{what}_p50_ms"),
                }
                for what, mode in (("latency", "plain"), ("ttft", "stream"))
                for c in sorted({x["concurrency"] for x in r["latency"]})
            },
        }
    return out


def git_revision(tree: Path) -> str | None:
    """The commit a source tree is at (and `+dirty` when it has uncommitted changes)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tree), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        head, dirty = (
            git("rev-parse", "--short", "HEAD"),
            git("status", "--porcelain", "--untracked-files=no"),
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def show(r: dict) -> None:
    t = Table(title="added latency vs direct (ms, p50 / p99)")
    for col in ("path", "mode", "conc", "p50", "p99", "ttft p50", "errors"):
        t.add_column(col)
    for x in r["latency"]:
        if x["path"] == "direct":
            continue
        t.add_row(
            x["path"],
            x["mode"],
            str(x["concurrency"]),
            str(x["added_latency_p50_ms"]),
            str(x["added_latency_p99_ms"]),
            str(x.get("added_ttft_p50_ms")),
            str(x["errors"]),
        )
    console.print(t)
    t = Table(title="wrk requests/s")
    for col in ("path", "mode", "connections", "req/s", "non-2xx", "CPU us/request"):
        t.add_column(col)
    for x in r["wrk"]:
        cpu = x.get("cpu_us_per_request") or {}
        t.add_row(
            x["path"],
            x["mode"],
            str(x["connections"]),
            str(x["requests_per_s"]),
            str(x["non_2xx"]),
            " ".join(f"{k}={v}" for k, v in cpu.items()),
        )
    console.print(t)
    console.print_json(data=r["summary"])


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, mode in zip(axes, ("plain", "stream"), strict=True):
        for name in dict.fromkeys(x["path"] for x in r["latency"] if x["path"] != "direct"):
            rows = [x for x in r["latency"] if x["path"] == name and x["mode"] == mode]
            if rows:
                key = "added_latency_p50_ms" if mode == "plain" else "added_ttft_p50_ms"
                ax.plot([x["concurrency"] for x in rows], [x[key] for x in rows], marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("symlog", linthresh=1)
        ax.set_xlabel("concurrency")
        ax.set_ylabel("added p50 latency (ms)" if mode == "plain" else "added p50 TTFT (ms)")
        ax.set_title(f"{mode}: added vs direct")
        ax.legend()
    fig.suptitle(f"gateway overhead, {r['date']}, {r['machine']['cpus']} CPUs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
