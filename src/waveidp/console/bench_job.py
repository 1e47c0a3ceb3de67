"""A short benchmark started from the console: `wave bench` against the gateway itself, in a process
of its own (spawned: the load generator must not share the gateway's CPU time or GIL), bounded in
requests and time, writing the same result folder as the CLI. Progress comes back through shared
counters; SIGTERM stops it early and the partial results are still written."""

from __future__ import annotations

import asyncio
import multiprocessing
import shlex
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waveidp.errors import InputError

MAX_POINTS = 3
MAX_CONCURRENCY = 16
MAX_REQUESTS = 50  # per load point
MAX_DURATION_S = 60.0  # per load point
MAX_OUTPUT_TOKENS = 256


@dataclass(frozen=True)
class BenchSpec:
    url: str
    model: str
    api_key: str | None
    concurrency: tuple[int, ...]
    requests: int
    duration_s: float
    input_tokens: int
    output_tokens: int
    out: Path

    def check(self) -> None:
        if not 1 <= len(self.concurrency) <= MAX_POINTS:
            raise InputError(f"give 1 to {MAX_POINTS} concurrency levels", where="concurrency")
        if any(not 1 <= c <= MAX_CONCURRENCY for c in self.concurrency):
            raise InputError(f"concurrency must be 1 to {MAX_CONCURRENCY}", where="concurrency")
        if not 1 <= self.requests <= MAX_REQUESTS:
            raise InputError(f"requests per point must be 1 to {MAX_REQUESTS}", where="requests")
        if not 0 < self.duration_s <= MAX_DURATION_S:
            raise InputError(f"seconds per point must be up to {MAX_DURATION_S:g}", where="duration")
        if not 1 <= self.output_tokens <= MAX_OUTPUT_TOKENS:
            raise InputError(f"output tokens must be 1 to {MAX_OUTPUT_TOKENS}", where="output_tokens")
        if not 1 <= self.input_tokens <= 4096:
            raise InputError("input tokens must be 1 to 4096", where="input_tokens")

    def command(self) -> str:
        """The equivalent CLI command (recorded in results.json; the key is never in it)."""
        return shlex.join(
            [
                "wave", "bench", "--url", self.url, "--model", self.model,
                "-c", ",".join(map(str, self.concurrency)), "-n", str(self.requests),
                "--duration", f"{self.duration_s:g}", "--input-tokens", str(self.input_tokens),
                "--output-tokens", str(self.output_tokens), "--out", str(self.out),
            ]
        )  # fmt: skip


def _run(spec: BenchSpec, done: Any, planned: Any, status: Any) -> None:
    """The spawned process: run the bench, write the folder, leave the status in `status`."""
    from waveidp.bench.client import Target
    from waveidp.bench.datasets import LengthDist, SyntheticPrompts
    from waveidp.bench.outputs import build_report, write_all
    from waveidp.bench.profiles import parse_loads
    from waveidp.bench.runner import BenchConfig, run_bench

    loads = parse_loads(",".join(map(str, spec.concurrency)), None, spec.requests, spec.duration_s)
    planned.value = sum(p.requests for p in loads)
    cfg = BenchConfig(
        target=Target(spec.url, spec.model, "chat", spec.api_key, True, 120.0),
        loads=loads,
        dataset=SyntheticPrompts(LengthDist(spec.input_tokens, 0), LengthDist(spec.output_tokens, 0), 0),
        grace_s=10.0,
    )
    before = [0] * len(loads)

    def on_progress(i: int, n: int, _planned: int) -> None:
        before[i] = n
        done.value = sum(before)

    async def main() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        return await run_bench(cfg, stop, on_progress)

    try:
        outcome = asyncio.run(main())
        write_all(build_report(outcome, cfg, spec.command()), spec.out)
        status.value = b"stopped" if outcome.interrupted else b"done"
    except Exception as exc:  # the page shows what went wrong; the console goes on
        status.value = f"failed: {type(exc).__name__}: {exc}"[:250].encode()


@dataclass
class BenchJob:
    spec: BenchSpec
    started: float = field(default_factory=time.time)
    process: Any = None
    done: Any = None
    planned: Any = None
    status: Any = None

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.done, self.planned = ctx.Value("i", 0), ctx.Value("i", 0)
        self.status = ctx.Array("c", 256)
        self.status.value = b"running"
        self.process = ctx.Process(
            target=_run,
            args=(self.spec, self.done, self.planned, self.status),
            name="wave-console-bench",
            daemon=True,
        )
        self.process.start()

    @property
    def state(self) -> str:
        text = bytes(self.status.value).decode(errors="replace")
        if text == "running" and self.process is not None and not self.process.is_alive():
            return f"failed: the bench process exited with {self.process.exitcode}"
        return text

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def stop(self) -> None:
        if self.running:
            self.process.terminate()  # SIGTERM: the bench stops and writes what it has

    def kill(self) -> None:
        if self.running:
            self.process.terminate()
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()
