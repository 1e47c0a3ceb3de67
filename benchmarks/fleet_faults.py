"""Faults across hosts: two gateway replicas behind a client-side load balancer, under a bounded load,
while an engine host dies, a link goes down for 5 s, a link gets 200 ms delay and 5% loss, a replica
is stopped, Redis stops and PostgreSQL stops. Measures issue 14's targets:

- no request lost or answered twice: every request has exactly one outcome in the client log and
  exactly one audit row (matched by its `x-request-id`);
- every non-streaming request succeeds (on another backend when its own failed before answering);
- every streaming request that was cut ends with an SSE error event (never silently);
- a backend back on the network returns to rotation within 3 s (each replica's /ready);
- a limit across the two replicas stays within one request of the configured rate;
- the audit chain verifies after every fault (`wave audit verify` against PostgreSQL).

    sudo .venv/bin/python benchmarks/fleet_faults.py                # the full scenario, ~2 minutes
    sudo .venv/bin/python benchmarks/fleet_faults.py --short --out DIR   # what tests/netns runs

The fleet is hosts in network namespaces (tests/netns_support.py; as root): `client` (this
script moves itself there), `gw1` and `gw2` (`wave serve` with the configuration contract's
variables only: WAVE_CONFIG, WAVE_DATABASE_URL, WAVE_REDIS_URL, ...), `pg` (Debian's PostgreSQL),
`redis`, and three engine hosts: `e1` the embedded llama-server with SmolLM2-135M, `e2` and `e3`
two `wave emulate` engines, slow (40 ms a token) and fast (8 ms). The gateway routes round-robin,
so every backend carries traffic when its fault comes. The client alternates replicas, as a load
balancer would, and moves a request to the other replica only when its connection was refused
(nothing was sent). Half the requests stream. Requests use a key without limits; the limit check
uses a key with `rpm`, requests alternating replicas as fast as they come back.

Where the kernel has no `tc netem` (this machine: CONFIG_NET_SCH_NETEM unset), the links of e2 and
e3 are user-space wires (tests/netns_wire.py) that delay and drop the frames leaving the host, as
netem on the host's interface would. Results: benchmarks/results/fleet_faults.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from netns_support import Host, TestNet, available, enter  # noqa: E402
from state_support import Postgres, Redis, postgres_bin  # noqa: E402

WAVE = Path(sys.executable).with_name("wave")
RESULTS = REPO / "benchmarks" / "results"
MODEL = "smol"
BOOTSTRAP = "wave-bootstrap-" + uuid.uuid4().hex
ADMIN = "wave-admin-" + uuid.uuid4().hex + uuid.uuid4().hex
PG_PASSWORD = uuid.uuid4().hex
REDIS_PASSWORD = uuid.uuid4().hex
console = Console(stderr=True)


@dataclass
class Outcome:
    """One request as the client saw it."""

    id: str
    stream: bool
    replica: str
    start: float
    end: float = 0.0
    status: int = 0
    backend: str | None = None
    result: str = ""  # ok | error_status | cut_with_error_event | truncated | connect_failed | client_error
    code: str | None = None
    failover: bool = False  # the first replica refused the connection; the other took it


@dataclass
class Phase:
    name: str
    start: float
    end: float = 0.0
    audit_ok: bool | None = None
    audit_rows: int | None = None
    notes: dict[str, Any] = field(default_factory=dict)


class Scenario:
    def __init__(self, net: TestNet, workdir: Path, short: bool) -> None:
        self.net = net
        self.work = workdir
        self.short = short
        self.t0 = time.monotonic()
        self.outcomes: list[Outcome] = []
        self.phases: list[Phase] = []
        self.hosts: dict[str, Host] = {}
        self.db_url = ""
        self.load_key = ""

    def now(self) -> float:
        return time.monotonic() - self.t0

    # --- the fleet ---------------------------------------------------------------------------------

    def build(self) -> None:
        net = self.net
        for name in ("client", "pg", "redis", "gw1", "gw2", "e1"):
            self.hosts[name] = net.add_host(name)
        for name in ("e2", "e3"):
            self.hosts[name] = net.add_host(name, impairable=True)
        h = self.hosts
        enter(h["client"].ns)  # from here on this process talks from the client host
        self.pg = Postgres.create(h["pg"].ip, 5432, PG_PASSWORD, prefix=h["pg"].cmd([]))
        self.db_url = self.pg.url
        self.redis = Redis(Path(tempfile.mkdtemp(prefix="wave-redis-")), h["redis"].ip, 6379, REDIS_PASSWORD,
                           prefix=h["redis"].cmd([]))  # fmt: skip
        self.redis.start()
        self.start_llama()
        self.start_emulator("e2", step_ms=40)
        self.start_emulator("e3", step_ms=8)

        def backend(host: str, name: str, engine: str, port: int) -> dict[str, Any]:
            url = f"http://{h[host].ip}:{port}"
            served = {"name": name, "engine": engine, "url": url, "models": [MODEL]}
            return {"name": host, "address": h[host].ip, "backends": [served]}

        timeouts = {"connect_timeout_s": 1, "first_token_timeout_s": 15, "chunk_gap_timeout_s": 3}
        fleet = {
            "version": 1,
            "name": "faults",
            "nodes": [
                backend("e1", "llama", "llamacpp", 8080),
                backend("e2", "slow", "emulated", 8000),
                backend("e3", "fast", "emulated", 8000),
            ],
            "routing": {"default_policy": "round-robin"},
            "gateway": {"port": 4000, **timeouts, "total_timeout_s": 60, "retries": 2},
        }
        self.fleet_file = self.work / "wave.yaml"
        self.fleet_file.write_text(json.dumps(fleet, indent=1))  # JSON is YAML
        for e in ("e1", "e2", "e3"):
            self.net.wait_reachable(h["client"], h[e], 8080 if e == "e1" else 8000, timeout=90)
        for gw in ("gw1", "gw2"):
            self.start_gateway(gw)
        for gw in ("gw1", "gw2"):
            self.wait_gateway(gw)

    def start_llama(self) -> None:
        from waveidp.engines.llamacpp import LlamaServerSpec
        from waveidp.engines.local_files import embedded_model_path, llama_tool

        spec = LlamaServerSpec(
            binary=llama_tool("llama-server"), model=embedded_model_path(), port=8080, alias=MODEL,
            host="0.0.0.0", threads=1, parallel=4, context=4096, n_predict=64,
        )  # fmt: skip
        self.hosts["e1"].start(spec.command(), log=self.work / "e1.log")

    def start_emulator(self, name: str, step_ms: float) -> None:
        self.hosts[name].start(
            [WAVE, "emulate", "--model", "llama-3.2-3b", "--engine", "vllm", "--served-name", MODEL,
             "--step-ms", str(step_ms), "--prefill-ms", "30", "--host", "0.0.0.0", "--port", "8000"],
            log=self.work / f"{name}.log",
        )  # fmt: skip

    def gateway_env(self, name: str) -> dict[str, str]:
        """The configuration contract and nothing else (docs/configuration.md)."""
        home = self.work / f"{name}-home"
        return {
            "PATH": os.environ["PATH"],
            "WAVE_CONFIG": str(self.fleet_file),
            "WAVE_HOME": str(home),
            "WAVE_HOST": "0.0.0.0",
            "WAVE_DATABASE_URL": self.db_url,
            "WAVE_REDIS_URL": self.redis.url,
            "WAVE_API_KEY": BOOTSTRAP,
            "WAVE_ADMIN_KEY": ADMIN,
        }

    def start_gateway(self, name: str) -> None:
        self.hosts[name].start([WAVE, "serve"], log=self.work / f"{name}.log", env=self.gateway_env(name))

    def wait_gateway(self, name: str, timeout: float = 60.0) -> None:
        import httpx

        url = f"http://{self.hosts[name].ip}:4000/ready"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{name} not ready: {(self.work / f'{name}.log').read_text()[-1500:]}")

    # --- the load ----------------------------------------------------------------------------------

    async def one(self, session: aiohttp.ClientSession, n: int, stream: bool, key: str) -> Outcome:
        replicas = ["gw1", "gw2"] if n % 2 == 0 else ["gw2", "gw1"]
        out = Outcome(id=f"r{n}-{uuid.uuid4().hex[:8]}", stream=stream, replica=replicas[0], start=self.now())
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"count to ten {n}"}],
                "max_tokens": 40 if stream else 12, "stream": stream}  # fmt: skip
        headers = {"Authorization": f"Bearer {key}", "x-request-id": out.id}
        for i, replica in enumerate(replicas):
            url = f"http://{self.hosts[replica].ip}:4000/v1/chat/completions"
            try:
                async with session.post(url, json=body, headers=headers) as r:
                    out.replica, out.status, out.backend = replica, r.status, r.headers.get("x-wave-backend")
                    out.failover = i > 0
                    if r.status != 200:
                        data = await r.json(content_type=None)
                        out.result, out.code = "error_status", (data.get("error") or {}).get("code")
                    elif not stream:
                        await r.read()
                        out.result = "ok"
                    else:
                        out.result = await self.read_stream(r)
                break
            except aiohttp.ClientConnectorError:
                out.result = "connect_failed"  # nothing sent: the balancer tries the other replica
                continue
            except (aiohttp.ClientError, TimeoutError) as exc:
                out.result, out.code = "client_error", type(exc).__name__
                break
        out.end = self.now()
        return out

    @staticmethod
    async def read_stream(r: aiohttp.ClientResponse) -> str:
        error = done = False
        buffer = b""
        async for chunk in r.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                data = event.removeprefix(b"data: ").strip()
                if data == b"[DONE]":
                    done = True
                elif data.startswith(b'{"error"'):
                    error = True
        if error:
            return "cut_with_error_event" if done else "truncated"
        return "ok" if done else "truncated"

    async def load(self, stop: asyncio.Event, rate: float) -> None:
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(force_close=True)
        ) as s:
            tasks = []
            n = 0
            rng = random.Random(7)
            while not stop.is_set():
                n += 1
                tasks.append(asyncio.create_task(self.one(s, n, rng.random() < 0.5, self.load_key)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), rng.expovariate(rate))
            self.outcomes.extend(await asyncio.gather(*tasks))

    # --- the faults --------------------------------------------------------------------------------

    async def phase(self, name: str) -> Phase:
        p = Phase(name, self.now())
        self.phases.append(p)
        console.print(f"[bold]{p.start:6.1f}s[/] {name}")
        return p

    async def verify(self, p: Phase, *, cli: bool = False) -> None:
        """The chain as `wave audit verify` checks it: through the command itself where `cli` (it
        starts a Python process, ~1 s here), else the same function in this process."""
        if cli or not self.short:
            r = await asyncio.to_thread(
                subprocess.run, [WAVE, "audit", "verify", "--json", "--database", self.db_url],
                capture_output=True, text=True,
            )  # fmt: skip
            verdict = json.loads(r.stdout) if r.stdout.strip() else {"ok": False, "rows": None}
            ok = bool(verdict["ok"]) and r.returncode == 0
        else:
            from waveidp.security import audit
            from waveidp.security.state import audit_table

            v = await asyncio.to_thread(audit.verify, audit_table(self.db_url, readonly=True))
            verdict, ok = v.to_dict(), v.ok
        p.audit_ok, p.audit_rows, p.end = ok, verdict["rows"], self.now()

    async def admin(self, replica: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = f"http://{self.hosts[replica].ip}:4000{path}"
        async with (
            aiohttp.ClientSession() as s,
            s.request(method, url, json=body, headers={"Authorization": f"Bearer {ADMIN}"}) as r,
        ):
            return r.status, await r.json(content_type=None)

    async def rotation(self, backend: str, since: float) -> dict[str, float | None]:
        """Seconds from `since` until each replica's /ready calls `backend` healthy (None: not in 15 s)."""
        found: dict[str, float | None] = {"gw1": None, "gw2": None}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as s:
            while any(v is None for v in found.values()) and self.now() - since < 15:
                for gw in found:
                    if found[gw] is not None:
                        continue
                    try:
                        async with s.get(f"http://{self.hosts[gw].ip}:4000/ready") as r:
                            states = (await r.json(content_type=None))["backends"]
                        if states[backend].endswith(": healthy"):
                            found[gw] = round(self.now() - since, 3)
                    except (aiohttp.ClientError, TimeoutError, KeyError):
                        pass
                await asyncio.sleep(0.05)
        return found

    async def limits(self, p: Phase, rpm: int) -> None:
        """2 x rpm requests of one key with an rpm limit, all at once, alternating replicas: the two
        replicas together must admit the bucket (rpm) plus what it refilled while they came in."""
        name = f"limited-{uuid.uuid4().hex[:6]}"
        status, key = await self.admin("gw1", "POST", "/admin/keys", {"name": name, "rpm": rpm})
        assert status == 201, key
        body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
        headers = {"Authorization": f"Bearer {key['key']}"}

        async def one(s: aiohttp.ClientSession, n: int) -> tuple[int, float]:
            url = f"http://{self.hosts[('gw1', 'gw2')[n % 2]].ip}:4000/v1/chat/completions"
            sent = time.monotonic()
            async with s.post(url, json=body, headers=headers) as r:
                await r.read()
                return r.status, sent

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as s:
            answers = await asyncio.gather(*(one(s, n) for n in range(2 * rpm)))
        allowed = sum(1 for status, _ in answers if status == 200)
        refused = sum(1 for status, _ in answers if status == 429)
        sent = [t for _, t in answers]
        elapsed = max(sent) - min(sent)
        # the bucket starts full (rpm) and refills rpm/60 a second while the requests arrive
        expected = rpm + elapsed * rpm / 60
        p.notes["limit"] = {"rpm": rpm, "requests": 2 * rpm, "allowed": allowed, "refused": refused,
                            "sent_within_s": round(elapsed, 3), "allowed_at_most": round(expected, 2),
                            "over_by": round(allowed - expected, 2)}  # fmt: skip

    async def faults(self, stop: asyncio.Event) -> None:
        h = self.hosts
        hold = 2.0 if self.short else 10.0
        p = await self.phase("baseline")
        await asyncio.sleep(hold)
        await self.limits(p, rpm=10 if self.short else 30)
        await self.verify(p)

        p = await self.phase("kill engine host e3 (SIGKILL)")
        await asyncio.to_thread(h["e3"].kill_all, signal.SIGKILL)
        await asyncio.sleep(hold)
        self.start_emulator("e3", step_ms=8)
        await asyncio.to_thread(self.net.wait_reachable, h["client"], h["e3"], 8000)
        back = self.now()  # the host answers again: from here the gateways must notice
        p.notes["back_in_rotation_s"] = await self.rotation("fast", back)
        await self.verify(p)

        p = await self.phase("link of e2 down for 5 s")
        await asyncio.sleep(1.0)  # streams on e2 in flight
        h["e2"].link.down()
        await asyncio.sleep(5.0)
        h["e2"].link.up()
        up = self.now()
        p.notes["back_in_rotation_s"] = await self.rotation("slow", up)
        await self.verify(p)

        p = await self.phase("e3 link: 200 ms delay, 5% loss")
        h["e3"].link.impair(200, 0.05)
        await asyncio.sleep(hold + 2)
        h["e3"].link.clear()
        await self.verify(p)

        p = await self.phase("stop replica gw2 (SIGTERM), start it again")
        t = self.now()
        await asyncio.to_thread(h["gw2"].kill_all, signal.SIGTERM)  # it drains what it has begun
        p.notes["drained_s"] = round(self.now() - t, 2)
        await asyncio.sleep(hold)
        t = self.now()
        self.start_gateway("gw2")
        await asyncio.to_thread(self.wait_gateway, "gw2")
        p.notes["restarted_s"] = round(self.now() - t, 2)
        await self.verify(p)

        p = await self.phase("stop Redis")
        await asyncio.to_thread(self.redis.stop)
        await asyncio.sleep(0.5)
        status, budget = await self.admin("gw1", "POST", "/admin/keys", {"name": "budget", "tpm": 100000})
        _, rate = await self.admin("gw1", "POST", "/admin/keys", {"name": "rate", "rpm": 1})
        body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 1}

        async def ask(s: aiohttp.ClientSession, key: str) -> int | str:
            headers = {"Authorization": f"Bearer {key}"}
            async with s.post(
                f"http://{h['gw2'].ip}:4000/v1/chat/completions", json=body, headers=headers
            ) as r:
                data = await r.json(content_type=None)
                return r.status if r.status == 200 else f"{r.status} {data['error']['code']}"

        async with aiohttp.ClientSession() as s:
            got = {
                name: list(await asyncio.gather(*(ask(s, k) for _ in range(3))))
                for name, k in (("tpm_key", budget["key"]), ("rpm_key", rate["key"]))
            }
        p.notes["while_redis_down"] = got  # tpm fails closed (503), rpm fails open (3 x 200 over rpm 1)
        await asyncio.sleep(max(0.0, hold - 1))
        await asyncio.to_thread(self.redis.start)
        await self.verify(p)

        p = await self.phase("stop PostgreSQL")
        await asyncio.to_thread(self.pg.stop)
        await asyncio.sleep(0.5)
        status, answer = await self.admin("gw1", "POST", "/admin/keys", {"name": "during-outage"})
        p.notes["create_key_while_down"] = {"status": status, "error": answer.get("error")}
        await asyncio.sleep(hold)
        await asyncio.to_thread(self.pg.start)
        await asyncio.sleep(2.5)  # the writers retry every second and write their spools out
        await self.verify(p)

        p = await self.phase("calm")
        await asyncio.sleep(2.0)
        stop.set()
        await self.verify(p, cli=True)  # the command itself, against PostgreSQL

    async def run(self, rate: float) -> None:
        status, key = await self.admin("gw1", "POST", "/admin/keys", {"name": "load"})
        assert status == 201, key
        self.load_key = key["key"]
        stop = asyncio.Event()
        await asyncio.gather(self.load(stop, rate), self.faults(stop))

    # --- what it showed ----------------------------------------------------------------------------

    def audit_rows_by_request(self) -> dict[str, int]:
        import psycopg

        with psycopg.connect(self.db_url) as conn:
            rows = conn.execute("SELECT request_id, count(*) FROM wave_audit GROUP BY request_id").fetchall()
        return {r[0]: r[1] for r in rows if r[0]}

    def summary(self, audit: dict[str, int]) -> dict[str, Any]:
        o = self.outcomes
        ids = [x.id for x in o]
        plain = [x for x in o if not x.stream]
        streams = [x for x in o if x.stream]
        rows = [audit.get(x.id, 0) for x in o]
        rotation = [v for p in self.phases for v in (p.notes.get("back_in_rotation_s") or {}).values()]
        limit = next(p.notes["limit"] for p in self.phases if "limit" in p.notes)
        return {
            "requests": len(o),
            "streaming": len(streams),
            "outcomes": {r: sum(1 for x in o if x.result == r) for r in sorted({x.result for x in o})},
            "one_outcome_per_request": len(ids) == len(set(ids)) and all(x.result for x in o),
            "audit_rows_per_request": {str(n): rows.count(n) for n in sorted(set(rows))},
            "exactly_one_audit_row_each": all(n == 1 for n in rows),
            "non_streaming_ok": sum(1 for x in plain if x.result == "ok"),
            "non_streaming": len(plain),
            "streams_cut_with_error_event": sum(1 for x in streams if x.result == "cut_with_error_event"),
            "streams_truncated_silently": sum(1 for x in streams if x.result == "truncated"),
            "balancer_failovers": sum(1 for x in o if x.failover),
            "back_in_rotation_s_max": max((v for v in rotation if v is not None), default=None),
            "back_in_rotation_all_within_3s": all(v is not None and v <= 3.0 for v in rotation),
            "limit": limit,
            "limit_within_one_request": limit["over_by"] <= 1.0,
            "audit_verified_after_every_fault": all(p.audit_ok for p in self.phases),
            "by_backend": {str(b): sum(1 for x in o if x.backend == b) for b in {x.backend for x in o}},
        }


def plot(outcomes: list[Outcome], phases: list[Phase], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"ok": "tab:green", "cut_with_error_event": "tab:orange", "error_status": "tab:red",
              "truncated": "black", "client_error": "tab:purple", "connect_failed": "tab:gray"}  # fmt: skip
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for i, p in enumerate(phases):
        if p.name not in ("baseline", "calm"):
            ax.axvspan(p.start, p.end or p.start, color="0.9" if i % 2 else "0.82", zorder=0)
            ax.text(p.start, 1.02, p.name, rotation=20, fontsize=7, transform=ax.get_xaxis_transform())
    for result, color in colors.items():
        xs = [x.start for x in outcomes if x.result == result]
        ys = [x.end - x.start for x in outcomes if x.result == result]
        if xs:
            ax.scatter(xs, ys, s=8, color=color, label=f"{result} ({len(xs)})")
    ax.set_xlabel("scenario time (s)")
    ax.set_ylabel("request latency (s)")
    ax.set_yscale("log")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", action="store_true", help="shorter holds and load (the test's size)")
    ap.add_argument("--rate", type=float, default=None, help="requests per second (default 6, short 5)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where fleet_faults.json/.png go")
    args = ap.parse_args()
    why = available()
    if why is not None or postgres_bin() is None:
        console.print(f"cannot run: {why or 'PostgreSQL is not installed'}")
        return 2
    rate = args.rate or (5.0 if args.short else 6.0)
    # a stop (Ctrl-C, SIGTERM, the watchdog) still removes the namespaces and what runs in them
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    faulthandler.dump_traceback_later(240 if args.short else 600, exit=False)
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="wave-faults-"))
    os.chmod(workdir, 0o755)
    started = time.time()
    with TestNet() as net:
        sc = Scenario(net, workdir, args.short)
        try:
            sc.build()
            asyncio.run(sc.run(rate))
            for gw in ("gw1", "gw2"):  # stop both gracefully: their last rows are written
                sc.hosts[gw].kill_all(signal.SIGTERM)
            audit = sc.audit_rows_by_request()
            summary = sc.summary(audit)
        finally:
            sc.redis.stop()
            sc.pg.destroy()
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},  # noqa: E501
        "link_emulation": "tc netem" if net._netem else "user-space wire (tests/netns_wire.py), no netem",
        "rate_rps": rate,
        "summary": summary,
        "phases": [asdict(p) for p in sc.phases],
        "requests": [asdict(x) for x in sc.outcomes],
    }  # fmt: skip
    (args.out / "fleet_faults.json").write_text(json.dumps(result, indent=1))
    plot(sc.outcomes, sc.phases, args.out / "fleet_faults.png")
    console.print_json(json.dumps(summary))
    console.print(f"logs: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
