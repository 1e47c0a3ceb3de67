"""The render data files (`data/*.yaml`), typed and loaded once."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

DATA = Path(__file__).parent / "data"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineDefaults(_Strict):
    prompt_tokens: int
    output_tokens: int
    context: int
    concurrency: dict[str, int]
    gpu_memory_utilization: float
    models_dir: str


class AlertDefaults(_Strict):
    gpu_memory_pressure_ratio: float
    gpu_memory_pressure_for: str
    backend_down_for: str
    throughput_drop_ratio: float
    throughput_drop_for: str
    gateway_error_ratio: float
    gateway_error_for: str
    gpu_throttle_for: str
    host_memory_available_ratio: float
    host_memory_for: str
    exporter_stall_s: int


class Defaults(_Strict):
    source: str
    engines: EngineDefaults
    scrape_interval_s: int
    evaluation_interval_s: int
    alerts: AlertDefaults


def _read(name: str) -> Any:
    return yaml.safe_load((DATA / name).read_text(encoding="utf-8"))


@functools.cache
def defaults() -> Defaults:
    return Defaults.model_validate(_read("defaults.yaml"))


@functools.cache
def containers() -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = _read("containers.yaml")
    return data


@functools.cache
def dashboards() -> dict[str, Any]:
    data: dict[str, Any] = _read("dashboards.yaml")
    return data
