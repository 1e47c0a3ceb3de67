"""A finished sweep -> its `BenchReport` (results.json): every request's timings, per-load-point
summaries, the command, versions, hardware."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path

import psutil

from waveidp.bench.report import (
    SCHEMA,
    BenchReport,
    DeploymentRecord,
    HardwareInfo,
    LoadPointResult,
    RunConfig,
    Target,
    WarmupCount,
)
from waveidp.bench.runner import BenchConfig, BenchOutcome
from waveidp.bench.summary import request_row, summarize


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_info(gpus: list[str]) -> HardwareInfo:
    return HardwareInfo(
        cpu=_cpu_model(),
        logical_cpus=psutil.cpu_count(),
        ram_bytes=psutil.virtual_memory().total,
        gpus=gpus,
        platform=platform.platform(),
    )


def build_report(
    outcome: BenchOutcome,
    cfg: BenchConfig,
    command: str,
    *,
    deployment: DeploymentRecord | None = None,
    chunks: bool = True,
) -> BenchReport:
    runs = []
    gpus: list[str] = []
    for run in outcome.runs:
        out_tokens = sum(r.output_tokens for r in run.records if r.ok)
        gpus = gpus or run.telemetry.gpu_names
        entry = LoadPointResult(
            load=run.point.kind,
            requests_planned=run.point.requests,
            duration_planned_s=run.point.duration_s,
            interrupted=run.interrupted,
            clock_origin_s=run.t0,
            summary=summarize(run.records, cfg.slo, run.loop_delay_s),
            telemetry=run.telemetry.summary(out_tokens, cfg.price_kwh),
            telemetry_samples=run.telemetry.samples,
            requests=[request_row(r, run.t0, chunks=chunks) for r in run.records],
        )
        if run.point.kind == "concurrency":
            entry.concurrency = int(run.point.value)
        else:
            entry.rate = run.point.value
        runs.append(entry)
    t = cfg.target
    return BenchReport(
        schema=SCHEMA,
        command=command,
        started_at=outcome.started_at,
        partial=outcome.interrupted,
        target=Target(
            url=t.url, model=t.model, endpoint=t.endpoint, ignore_eos=t.ignore_eos, timeout_s=t.timeout_s
        ),
        dataset=cfg.dataset.describe(),
        config=RunConfig(
            warmup=cfg.warmup,
            point_warmup=cfg.point_warmup,
            ramp_s=cfg.ramp_s,
            grace_s=cfg.grace_s,
            seed=cfg.seed,
            slo=cfg.slo.as_dict(),
            price_kwh=cfg.price_kwh,
        ),
        deployment=deployment,
        warmup=WarmupCount(requests=len(outcome.warmup), completed=sum(1 for r in outcome.warmup if r.ok)),
        versions={
            "wave": _version("waveidp"),
            "python": sys.version.split()[0],
            "aiohttp": _version("aiohttp"),
            "numpy": _version("numpy"),
        },
        hardware=hardware_info(gpus),
        runs=runs,
    )
