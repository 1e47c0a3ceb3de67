"""The results document of `wave bench` (results.json), typed, with load and save.

Every writer (`wave bench`, through `outputs.results_json.build_report`) and every reader (console,
CSV, plots, HTML, `bench compare`, predictions, `wave calibrate`, the scripts under benchmarks/)
goes through these models. The metric fields are named by the keys their metric modules declare
(`waveidp.bench.metrics`).

A document keeps exactly the fields it was built or loaded with (saved with `exclude_unset`):
optional parts (a request's `chunk_ms`, the GPU telemetry, the predictions) are written only when
present, and files written by earlier versions, which lack a run's `clock_origin_s` and a
prediction's `arrival`, load as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from waveidp.bench.metrics import Distribution, Metric, RequestMetric
from waveidp.errors import InputError

SCHEMA: Literal["wave-bench/1"] = "wave-bench/1"
Arrival = Literal["burst", "steady"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Target(_Strict):
    url: str
    model: str
    endpoint: str
    ignore_eos: bool
    timeout_s: float


class RunConfig(_Strict):
    warmup: int
    point_warmup: int
    ramp_s: float
    grace_s: float
    seed: int
    slo: dict[str, float]
    price_kwh: float | None


class DeploymentRecord(_Strict):
    """What a run was served by, so that sizing can predict it later (`bench.predict`). The
    server settings beyond model/quant/devices/engine are written only when given."""

    model: str
    quant: str
    devices: list[str]
    engine: str
    context: int | None = None
    threads: int | None = None
    parallel: int | None = None
    prompt_cache: bool | None = None

    def settings(self) -> dict[str, Any]:
        """The server settings given, as `Deployment.build` keywords (context apart); None = not
        given (a report dumped whole and read back has every field set, its unknowns to None)."""
        return self.model_dump(
            exclude_unset=True, exclude_none=True, exclude={"model", "quant", "devices", "engine", "context"}
        )


class WarmupCount(_Strict):
    requests: int
    completed: int


class HardwareInfo(_Strict):
    cpu: str
    logical_cpus: int | None
    ram_bytes: int
    gpus: list[str]
    platform: str


class LoadPointSummary(_Strict):
    """One load point's metrics; the per-request ones as distributions in their unit."""

    ttft_ms: Distribution
    itl_ms: Distribution
    e2e_ms: Distribution
    client_lag_ms: Distribution
    output_tokens: Distribution
    input_tokens: Distribution
    output_tokens_per_s: float
    requests_per_s: float
    goodput_per_s: float
    slo: dict[str, float]
    duration_s: float | None
    sent: int
    completed: int
    errors: int
    errors_by_kind: dict[str, int]
    error_examples: dict[str, str]
    cancelled: int
    resent_on_stale_connection: int
    output_token_source: str | None
    input_token_source: str | None
    loop_delay_ms: Distribution

    def distribution(self, metric: RequestMetric | Metric) -> Distribution:
        d = getattr(self, metric.key)
        if not isinstance(d, Distribution):
            raise TypeError(f"{metric.key} is not a distribution")
        return d

    def per_s(self, metric: Metric) -> float:
        return float(getattr(self, metric.key))


class RequestRow(_Strict):
    """One request's timings, seconds relative to the load point's start (`clock_origin_s`)."""

    scheduled_s: float
    sent_s: float | None
    first_token_s: float | None
    done_s: float | None
    ttft_ms: float | None
    itl_ms: float | None
    e2e_ms: float | None
    client_lag_ms: float | None
    input_tokens: int | None
    input_token_source: str | None
    output_tokens: int
    output_token_source: str
    content_chunks: int
    status: int | None
    warmup: bool
    attempts: int
    error: str | None
    error_detail: str | None
    chunk_ms: list[float] | None = None  # every content chunk, ms after scheduled (--chunks)

    def value(self, metric: Metric) -> float | None:
        v = getattr(self, metric.key)
        return None if v is None else float(v)


class GpuSample(_Strict):
    power_w: float | None
    memory_used_bytes: int | float | None  # float in files of earlier versions
    util_percent: float | None
    sm_clock_mhz: float | None


class TelemetrySample(_Strict):
    """One read of the node collector; the parts it had a source for."""

    t: float
    cpu_percent: float | None = None
    ram_used_bytes: int | None = None
    gpus: list[GpuSample] | None = None


class TelemetrySummary(_Strict):
    """Energy over a load point and what it means per token (`bench.telemetry`)."""

    seconds: float
    gpus: list[str]
    nvml: str
    gpu_energy_j: float | None
    gpu_energy_source: str | None
    cpu_energy_j: float | None
    cpu_energy_source: str
    energy_j: float | None
    mean_power_w: float | None
    tokens_per_joule: float | None
    cost_per_million_tokens: float | None
    price_kwh: float | None
    cpu_percent_mean: float | None
    ram_used_bytes_max: int | None
    gpu_memory_used_bytes_max: int | float | None = None  # only with GPU samples
    gpu_util_percent_mean: float | None = None


class LoadPointResult(_Strict):
    load: Literal["concurrency", "rate"]
    concurrency: int | None = None  # the one of these two that `load` names is set
    rate: float | None = None
    requests_planned: int
    duration_planned_s: float
    interrupted: bool
    clock_origin_s: float | None = None  # perf_counter (CLOCK_MONOTONIC) that request times are relative to
    summary: LoadPointSummary
    telemetry: TelemetrySummary
    telemetry_samples: list[TelemetrySample]
    requests: list[RequestRow]

    @property
    def label(self) -> str:
        if self.load == "concurrency":
            return f"c={self.concurrency}"
        return f"rate={self.rate:g}/s"


class PredictedValue(_Strict):
    predicted: float
    measured: float | None
    error_pct: float | None


class Prediction(_Strict):
    """The sizing model's figure for one measured load point (`bench.predict`)."""

    label: str
    concurrency: int
    prompt_tokens: int
    output_tokens: int
    arrival: Arrival | None = None  # absent in files written before arrivals were told apart
    ttft_ms: PredictedValue
    itl_ms: PredictedValue
    output_tokens_per_s: PredictedValue

    def value(self, metric: Metric) -> PredictedValue:
        v = getattr(self, metric.key)
        assert isinstance(v, PredictedValue), metric.key
        return v


class BenchReport(_Strict):
    """results.json: the command, target, settings, environment and every load point."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["wave-bench/1"] = Field(alias="schema")
    command: str
    started_at: str
    partial: bool
    target: Target
    dataset: dict[str, str]
    config: RunConfig
    deployment: DeploymentRecord | None
    warmup: WarmupCount
    versions: dict[str, str | None]
    hardware: HardwareInfo
    runs: list[LoadPointResult]
    predictions: list[Prediction] | None = None

    _path: Path | None = PrivateAttr(default=None)

    @property
    def path(self) -> Path | None:
        """The file it was loaded from or saved to."""
        return self._path

    @property
    def where(self) -> str:
        return str(self._path) if self._path else "results"

    @classmethod
    def load(cls, path: Path) -> BenchReport:
        """Read a results.json (or the results.json inside a directory) and check it is one of ours."""
        if path.is_dir():
            path = path / "results.json"
        try:
            data = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise InputError(
                "no such results file", where=str(path), fix="give a results.json or its --out DIR"
            ) from None
        except orjson.JSONDecodeError as exc:
            raise InputError(f"not JSON: {exc}", where=str(path)) from None
        ours = isinstance(data, dict) and data.get("schema") == SCHEMA and isinstance(data.get("runs"), list)
        if not ours:
            raise InputError(f"not a wave bench results file (schema {SCHEMA})", where=str(path))
        try:
            report = cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise InputError(f"{field}: {err['msg']}", where=str(path)) from None
        report._path = path
        return report

    def to_dict(self, *, exclude: Any = None) -> dict[str, Any]:
        """The document as results.json holds it (the fields it was built or loaded with)."""
        return self.model_dump(by_alias=True, exclude_unset=True, exclude=exclude)

    def save(self, out_dir: Path) -> Path:
        """Write `out_dir`/results.json atomically."""
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "results.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        tmp.replace(path)
        self._path = path
        return path
