"""The sizing model's prediction for each measured load point, and the error against measurement.

A results.json that carries `deployment` (model, quant, devices, engine) can be compared with
`waveidp.sizing`; the same comparison drives `wave calibrate`.
"""

from __future__ import annotations

from typing import Any, Literal

from waveidp.errors import InputError


def deployment_record(
    model: str, quant: str | None, devices: list[str], engine: str | None, **extra: Any
) -> dict[str, Any]:
    """What results.json stores so the run can be predicted and calibrated later; checked now."""
    from waveidp.sizing import Deployment

    d = Deployment.build(model, quant, devices, engine, **extra)
    return {"model": model, "quant": d.quant.id, "devices": devices, "engine": d.engine, **extra}


def _deployment(rec: dict[str, Any], context: int) -> Any:
    from waveidp.sizing import Deployment

    extra = {k: v for k, v in rec.items() if k not in ("model", "quant", "devices", "engine", "context")}
    return Deployment.build(
        rec["model"],
        rec["quant"],
        list(rec["devices"]),
        rec["engine"],
        context=max(int(rec.get("context") or 4096), context),
        **extra,
    )


def primary_device(rec: dict[str, Any]) -> str:
    """The device whose efficiency factors the sizing model applies (the first accelerator, else the CPU)."""
    d = _deployment(rec, 1)
    return str((d.accelerators or d.devices)[0].id)


def _measured_loads(doc: dict[str, Any]) -> list[tuple[dict[str, Any], int, int, int, Any]]:
    """(run, concurrency, prompt tokens, output tokens, closed loop) of every run that completed
    something. The closed loop is the run as the sizing simulation replays it: the requests and
    duration planned, the ramp and excluded first requests, and how many slots earlier requests on
    the same server left behind (the warm-up's, then the previous point's). Open-loop (rate) runs and
    results without the run's plan get None: the sizing model's default run (at the concurrency
    Little's law gives)."""
    from waveidp.sizing import ClosedLoop

    cfg = doc.get("config") or {}
    dirty = int((doc.get("warmup") or {}).get("completed") or 0)
    points = []
    for run in doc["runs"]:
        s = run["summary"]
        if s["completed"] and s["ttft_ms"]["p50"] is not None and s["input_tokens"]["mean"] is not None:
            prompt = max(1, round(s["input_tokens"]["mean"]))
            output = max(1, round(s["output_tokens"]["mean"]))
            load = None
            if run["load"] == "concurrency":
                conc = int(run["concurrency"])
                if run.get("requests_planned"):
                    load = ClosedLoop(
                        concurrency=conc,
                        prompt_tokens=prompt,
                        output_tokens=output,
                        requests=int(run["requests_planned"]),
                        ramp_s=float(cfg.get("ramp_s") or 0.0),
                        skip=int(cfg.get("point_warmup") or 0),
                        duration_s=float(run.get("duration_planned_s") or 0.0) or float("inf"),
                        dirty_slots=dirty,
                    )
            else:  # Little's law: requests in flight = arrival rate x time in system
                conc = max(1, round(s["requests_per_s"] * (s["e2e_ms"]["mean"] or 0) / 1000))
            points.append((run, conc, prompt, output, load))
        dirty = int(run.get("concurrency") or dirty)
    return points


def arrival_pattern(doc: dict[str, Any], run: dict[str, Any] | None = None) -> Literal["burst", "steady"]:
    """How the measured clients arrived, from what results.json records: "steady" for open-loop
    (Poisson) runs and for closed-loop runs whose starts were spread (--ramp) with the first
    requests excluded (--point-warmup); else "burst" (every client starts together: wave bench's
    default)."""
    if run is not None and run.get("load") == "rate":
        return "steady"
    cfg = doc.get("config") or {}
    return "steady" if (cfg.get("ramp_s") or 0) > 0 and (cfg.get("point_warmup") or 0) > 0 else "burst"


def _throughput(run: dict[str, Any], arrival: str, conc: int) -> float | None:
    """Measured output tok/s. For a steady closed loop it is c x mean output / mean e2e (Little's
    law): the summary's window figure counts only the measured requests' tokens, while the excluded
    point-warm-up requests run in the same window and clients stop one by one at its end (seen on
    the H100: 329 vs 403 tok/s at c=16)."""
    s = run["summary"]
    e2e, out = s["e2e_ms"]["mean"], s["output_tokens"]["mean"]
    if arrival == "steady" and run["load"] == "concurrency" and e2e and out:
        return float(conc * out / (e2e / 1000))
    return s["output_tokens_per_s"]


def _err(pred: float, meas: float | None) -> float | None:
    return None if not meas else (pred - meas) / meas * 100


def predict_runs(doc: dict[str, Any], eff: Any = None) -> list[dict[str, Any]]:
    """Prediction + error per run; `eff` overrides the efficiency factors (calibration)."""
    from waveidp.sizing import PerfModel, steady_state_point

    rec = doc.get("deployment")
    if not rec:
        raise InputError(
            "these results carry no deployment description",
            where=doc.get("_path", "results"),
            fix="run wave bench with --model-id/--device/--engine (and --quant)",
        )
    from waveidp.bench.outputs.results_json import run_label

    out = []
    cache: dict[int, Any] = {}
    for run, conc, prompt, output, load in _measured_loads(doc):
        ctx = prompt + output
        if ctx not in cache:
            cache[ctx] = PerfModel(_deployment(rec, ctx), eff)
        arrival = arrival_pattern(doc, run)
        pt = steady_state_point(cache[ctx], conc, prompt, output, arrival, load)
        s = run["summary"]
        row = {
            "label": run_label(run),
            "concurrency": conc,
            "prompt_tokens": prompt,
            "output_tokens": output,
            "arrival": arrival,
        }
        for key, pred, meas in (
            ("ttft_ms", pt.ttft_ms, s["ttft_ms"]["p50"]),
            ("itl_ms", pt.itl_ms, s["itl_ms"]["p50"]),
            ("output_tokens_per_s", pt.output_tokens_per_s, _throughput(run, arrival, conc)),
        ):
            row[key] = {"predicted": pred, "measured": meas, "error_pct": _err(pred, meas)}
        out.append(row)
    return out


def mean_abs_error_pct(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in ("ttft_ms", "itl_ms", "output_tokens_per_s"):
        errs = [abs(r[key]["error_pct"]) for r in rows if r[key]["error_pct"] is not None]
        out[key] = sum(errs) / len(errs) if errs else None
    return out
