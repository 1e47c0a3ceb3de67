"""The sizing model's prediction for each measured load point, and the error against measurement.

A results.json that carries `deployment` (model, quant, devices, engine) can be compared with
`waveidp.sizing`; the same comparison drives `wave calibrate`.
"""

from __future__ import annotations

from typing import Any

from waveidp.bench.metrics import ITL, OUTPUT_THROUGHPUT, TTFT, Metric
from waveidp.bench.report import (
    Arrival,
    BenchReport,
    DeploymentRecord,
    LoadPointResult,
    PredictedValue,
    Prediction,
    RunConfig,
)
from waveidp.errors import InputError

PREDICTED: tuple[Metric, ...] = (TTFT, ITL, OUTPUT_THROUGHPUT)  # the figures a prediction gives


def deployment_record(
    model: str, quant: str | None, devices: list[str], engine: str | None, **extra: Any
) -> DeploymentRecord:
    """What results.json stores so the run can be predicted and calibrated later; checked now."""
    from waveidp.sizing import Deployment

    d = Deployment.build(model, quant, devices, engine, **extra)
    return DeploymentRecord(model=model, quant=d.quant.id, devices=devices, engine=d.engine, **extra)


def _deployment(rec: DeploymentRecord, context: int, hardware: list[Any] | None = None) -> Any:
    from waveidp.sizing import Deployment

    return Deployment.build(
        rec.model,
        rec.quant,
        hardware or list(rec.devices),
        rec.engine,
        context=max(int(rec.context or 4096), context),
        **rec.settings(),
    )


def primary_device(rec: DeploymentRecord) -> str:
    """The device whose efficiency factors the sizing model applies (the first accelerator, else the CPU)."""
    d = _deployment(rec, 1)
    return str((d.accelerators or d.devices)[0].id)


def _measured_loads(report: BenchReport) -> list[tuple[LoadPointResult, int, int, int, Any]]:
    """(run, concurrency, prompt tokens, output tokens, closed loop) of every run that completed
    something. The closed loop is the run as the sizing simulation replays it: the requests and
    duration planned, the ramp and excluded first requests, and how many slots earlier requests on
    the same server left behind (the warm-up's, then the previous point's). Open-loop (rate) runs and
    results without the run's plan get None: the sizing model's default run (at the concurrency
    Little's law gives)."""
    from waveidp.sizing import ClosedLoop

    cfg = report.config
    dirty = report.warmup.completed
    points = []
    for run in report.runs:
        s = run.summary
        if s.completed and s.ttft_ms.p50 is not None and s.input_tokens.mean is not None:
            prompt = max(1, round(s.input_tokens.mean))
            output = max(1, round(s.output_tokens.mean or 0))
            load = None
            if run.load == "concurrency":
                conc = int(run.concurrency or 0)
                if run.requests_planned:
                    sent = _burst_starts(run, cfg, conc)
                    load = ClosedLoop(
                        concurrency=conc,
                        prompt_tokens=prompt,
                        output_tokens=output,
                        requests=run.requests_planned,
                        ramp_s=cfg.ramp_s,
                        starts=sent,
                        skip=cfg.point_warmup,
                        duration_s=run.duration_planned_s or float("inf"),
                        dirty_slots=dirty,
                    )
            else:  # Little's law: requests in flight = arrival rate x time in system
                conc = max(1, round(s.requests_per_s * (s.e2e_ms.mean or 0) / 1000))
            points.append((run, conc, prompt, output, load))
        dirty = int(run.concurrency or dirty)
    return points


def _burst_starts(run: LoadPointResult, cfg: RunConfig, conc: int) -> tuple[float, ...]:
    """When the clients of a burst (no --ramp) actually sent their first requests, relative to the
    first: the c earliest sends (none ends that soon). A client that sends a few ms late misses the
    first batch, and the burst then drifts into groups that the replay should follow (seen with a
    busy client host: 0.3-14 ms late at c = 4). () when not recorded or when starts were ramped."""
    if cfg.ramp_s > 0:
        return ()
    sent = sorted(r.sent_s for r in run.requests if r.sent_s is not None)[:conc]
    return tuple(t - sent[0] for t in sent) if len(sent) == conc else ()


def arrival_pattern(report: BenchReport, run: LoadPointResult | None = None) -> Arrival:
    """How the measured clients arrived, from what results.json records: "steady" for open-loop
    (Poisson) runs and for closed-loop runs whose starts were spread (--ramp) with the first
    requests excluded (--point-warmup); else "burst" (every client starts together: wave bench's
    default)."""
    if run is not None and run.load == "rate":
        return "steady"
    cfg = report.config
    return "steady" if cfg.ramp_s > 0 and cfg.point_warmup > 0 else "burst"


def _throughput(run: LoadPointResult, arrival: str, conc: int) -> float | None:
    """Measured output tok/s. For a steady closed loop it is c x mean output / mean e2e (Little's
    law): the summary's window figure counts only the measured requests' tokens, while the excluded
    point-warm-up requests run in the same window and clients stop one by one at its end (seen on
    the H100: 329 vs 403 tok/s at c=16)."""
    s = run.summary
    e2e, out = s.e2e_ms.mean, s.output_tokens.mean
    if arrival == "steady" and run.load == "concurrency" and e2e and out:
        return float(conc * out / (e2e / 1000))
    return s.output_tokens_per_s


def _err(pred: float, meas: float | None) -> float | None:
    return None if not meas else (pred - meas) / meas * 100


def predict_runs(report: BenchReport, eff: Any = None, hardware: list[Any] | None = None) -> list[Prediction]:
    """Prediction + error per run; `eff` overrides the efficiency factors (calibration), `hardware`
    the recorded device ids (e.g. a fleet node's devices with their detected description)."""
    from waveidp.sizing import PerfModel, steady_state_point

    rec = report.deployment
    if not rec:
        raise InputError(
            "these results carry no deployment description",
            where=report.where,
            fix="run wave bench with --model-id/--device/--engine (and --quant)",
        )
    out = []
    cache: dict[int, Any] = {}
    for run, conc, prompt, output, load in _measured_loads(report):
        ctx = prompt + output
        if ctx not in cache:
            cache[ctx] = PerfModel(_deployment(rec, ctx, hardware), eff)
        arrival = arrival_pattern(report, run)
        pt = steady_state_point(cache[ctx], conc, prompt, output, arrival, load)
        s = run.summary
        throughput = _throughput(run, arrival, conc)
        measured = {TTFT: s.ttft_ms.p50, ITL: s.itl_ms.p50, OUTPUT_THROUGHPUT: throughput}
        values = {
            m.key: PredictedValue(predicted=p, measured=measured[m], error_pct=_err(p, measured[m]))
            for m, p in ((TTFT, pt.ttft_ms), (ITL, pt.itl_ms), (OUTPUT_THROUGHPUT, pt.output_tokens_per_s))
        }
        out.append(
            Prediction(
                label=run.label,
                concurrency=conc,
                prompt_tokens=prompt,
                output_tokens=output,
                arrival=arrival,
                **values,
            )
        )
    return out


def mean_abs_error_pct(rows: list[Prediction]) -> dict[str, float | None]:
    """Per predicted metric (by key), the mean |error| in percent over the rows that measured it."""
    out: dict[str, float | None] = {}
    for m in PREDICTED:
        errs = [abs(e) for r in rows if (e := r.value(m).error_pct) is not None]
        out[m.key] = sum(errs) / len(errs) if errs else None
    return out
