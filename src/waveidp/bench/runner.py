"""Runs a sweep: warm-up, then each load point with telemetry and an event-loop delay monitor."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from time import perf_counter
from typing import Any, Protocol

from waveidp.bench.client import RequestSpec, StreamingClient, Target
from waveidp.bench.metrics import Slo
from waveidp.bench.profiles import LoadPoint, run_concurrency, run_poisson
from waveidp.bench.records import RequestRecord
from waveidp.bench.telemetry import Telemetry
from waveidp.errors import WaveError


class BenchError(WaveError):
    """The target cannot be benchmarked (unreachable, wrong model, errors, garbage)."""


class Dataset(Protocol):
    def next(self) -> RequestSpec: ...

    def describe(self) -> dict[str, str]: ...


@dataclass
class BenchConfig:
    target: Target
    loads: list[LoadPoint]
    dataset: Dataset
    slo: Slo = field(default_factory=Slo)
    warmup: int = 1
    point_warmup: int = 0  # first requests of every load point, run but excluded (steady state)
    ramp_s: float = 0.0
    grace_s: float = 30.0
    seed: int = 0
    price_kwh: float | None = None
    telemetry_interval_s: float = 0.5


@dataclass
class RunResult:
    point: LoadPoint
    records: list[RequestRecord]
    t0: float
    telemetry: Telemetry
    loop_delay_s: list[float]
    interrupted: bool = False


@dataclass
class BenchOutcome:
    started_at: str
    runs: list[RunResult] = field(default_factory=list)
    warmup: list[RequestRecord] = field(default_factory=list)
    interrupted: bool = False


Progress = Callable[[int, int, int], None]  # (load point index, finished, planned)


def describe_failure(records: list[RequestRecord], target: Target) -> str:
    """One line naming the most common failure of `records`."""
    failed = [r for r in records if not r.ok and r.error != "cancelled"]
    if not failed:
        return "no request completed"
    kinds: dict[str, int] = {}
    for r in failed:
        kinds[r.error or "incomplete"] = kinds.get(r.error or "incomplete", 0) + 1
    kind = max(kinds, key=lambda k: kinds[k])
    detail = next(r.error_detail for r in failed if (r.error or "incomplete") == kind)
    hint = ""
    if kind == "http" and " 404" in (detail or "")[:9]:
        hint = f" (is the model name '{target.model}' right? check GET {target.url.rstrip('/')}/v1/models)"
    return f"{len(failed)}/{len(records)} requests to {target.request_url} failed ({kind}): {detail}{hint}"


async def _loop_delay_monitor(samples: list[float], done: asyncio.Event, every_s: float = 0.01) -> None:
    """How long a callback waits in the ready queue: the client's own saturation, sampled."""
    loop = asyncio.get_running_loop()
    while not done.is_set():
        await asyncio.sleep(every_s)
        fut: asyncio.Future[None] = loop.create_future()
        t = perf_counter()
        loop.call_soon(fut.set_result, None)
        await fut
        samples.append(perf_counter() - t)


async def run_bench(cfg: BenchConfig, stop: asyncio.Event, progress: Progress | None = None) -> BenchOutcome:
    outcome = BenchOutcome(started_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    max_conc = max((int(p.value) for p in cfg.loads if p.kind == "concurrency"), default=0)
    connections = max(max_conc, 256 if any(p.kind == "rate" for p in cfg.loads) else 1) * 2
    async with StreamingClient(cfg.target, connections) as client:

        def sender(on_done: Callable[[], None] | None) -> Callable[[RequestRecord], Any]:
            async def send(record: RequestRecord) -> None:
                await client.send(cfg.dataset.next(), record)
                if on_done is not None:
                    on_done()

            return send

        if cfg.warmup:
            warm_point = LoadPoint("concurrency", min(cfg.warmup, max(max_conc, 1)), cfg.warmup, 3600)
            outcome.warmup = await run_concurrency(
                warm_point, sender(None), stop, grace_s=cfg.target.timeout_s
            )
            for r in outcome.warmup:
                r.warmup = True
            if stop.is_set():
                outcome.interrupted = True
                return outcome
            if not any(r.ok for r in outcome.warmup):
                raise BenchError("warm-up failed: " + describe_failure(outcome.warmup, cfg.target))

        for i, point in enumerate(cfg.loads):
            finished = 0

            def on_done(i: int = i, point: LoadPoint = point) -> None:
                nonlocal finished
                finished += 1
                if progress is not None:
                    progress(i, finished, point.requests + cfg.point_warmup)

            telemetry = Telemetry(cfg.telemetry_interval_s)
            telemetry.start()
            delays: list[float] = []
            monitor_done = asyncio.Event()
            monitor = asyncio.create_task(_loop_delay_monitor(delays, monitor_done))
            # A full collection of the records and aiohttp objects can stall the loop for tens of
            # ms (seen as client lag); collect between load points instead.
            gc.collect()
            gc.disable()
            t0 = perf_counter()
            shape = replace(point, requests=point.requests + cfg.point_warmup)
            try:
                if point.kind == "concurrency":
                    records = await run_concurrency(shape, sender(on_done), stop, cfg.ramp_s, cfg.grace_s)
                else:
                    records = await run_poisson(shape, sender(on_done), stop, cfg.seed + i, cfg.grace_s)
            finally:
                gc.enable()
                monitor_done.set()
                await monitor
                telemetry.stop()
            for r in sorted(records, key=lambda r: r.scheduled)[: cfg.point_warmup]:
                r.warmup = True
            outcome.runs.append(RunResult(point, records, t0, telemetry, delays, interrupted=stop.is_set()))
            if stop.is_set():
                outcome.interrupted = True
                break
    return outcome
