"""`results.json`: every request's timings, per-load-point summaries, the command, versions, hardware."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import psutil

from waveidp.bench.metrics import distribution
from waveidp.bench.runner import BenchConfig, BenchOutcome
from waveidp.bench.summary import request_row, summarize
from waveidp.errors import InputError

SCHEMA = "wave-bench/1"


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


def hardware_info(gpus: list[str]) -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "logical_cpus": psutil.cpu_count(),
        "ram_bytes": psutil.virtual_memory().total,
        "gpus": gpus,
        "platform": platform.platform(),
    }


def build_document(
    outcome: BenchOutcome,
    cfg: BenchConfig,
    command: str,
    *,
    deployment: dict[str, Any] | None = None,
    chunks: bool = True,
) -> dict[str, Any]:
    runs = []
    gpus: list[str] = []
    for run in outcome.runs:
        summary = summarize(run.records, cfg.slo)
        summary["loop_delay_ms"] = distribution(run.loop_delay_s, 1000).as_dict()
        out_tokens = sum(r.output_tokens for r in run.records if r.ok)
        telemetry = run.telemetry.summary(out_tokens, cfg.price_kwh)
        gpus = gpus or run.telemetry.gpu_names
        entry: dict[str, Any] = {
            "load": run.point.kind,
            run.point.kind: int(run.point.value) if run.point.kind == "concurrency" else run.point.value,
            "requests_planned": run.point.requests,
            "duration_planned_s": run.point.duration_s,
            "interrupted": run.interrupted,
            "clock_origin_s": run.t0,  # perf_counter (CLOCK_MONOTONIC) that request times are relative to
            "summary": summary,
            "telemetry": telemetry,
            "telemetry_samples": run.telemetry.samples,
            "requests": [request_row(r, run.t0, chunks=chunks) for r in run.records],
        }
        runs.append(entry)
    t = cfg.target
    return {
        "schema": SCHEMA,
        "command": command,
        "started_at": outcome.started_at,
        "partial": outcome.interrupted,
        "target": {
            "url": t.url,
            "model": t.model,
            "endpoint": t.endpoint,
            "ignore_eos": t.ignore_eos,
            "timeout_s": t.timeout_s,
        },
        "dataset": cfg.dataset.describe(),
        "config": {
            "warmup": cfg.warmup,
            "point_warmup": cfg.point_warmup,
            "ramp_s": cfg.ramp_s,
            "grace_s": cfg.grace_s,
            "seed": cfg.seed,
            "slo": cfg.slo.as_dict(),
            "price_kwh": cfg.price_kwh,
        },
        "deployment": deployment,
        "warmup": {"requests": len(outcome.warmup), "completed": sum(1 for r in outcome.warmup if r.ok)},
        "versions": {
            "wave": _version("waveidp"),
            "python": sys.version.split()[0],
            "aiohttp": _version("aiohttp"),
            "numpy": _version("numpy"),
        },
        "hardware": hardware_info(gpus),
        "runs": runs,
    }


def write_document(doc: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "results.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    tmp.replace(path)
    return path


def load_document(path: Path) -> dict[str, Any]:
    """Read a results.json (or the results.json inside a directory) and check it is one of ours."""
    if path.is_dir():
        path = path / "results.json"
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise InputError(
            "no such results file", where=str(path), fix="give a results.json or its --out DIR"
        ) from None
    except orjson.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc}", where=str(path)) from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("runs"), list):
        raise InputError(f"not a wave bench results file (schema {SCHEMA})", where=str(path))
    doc["_path"] = str(path)
    return doc


def run_label(run: dict[str, Any]) -> str:
    if run["load"] == "concurrency":
        return f"c={run['concurrency']}"
    return f"rate={run['rate']:g}/s"
