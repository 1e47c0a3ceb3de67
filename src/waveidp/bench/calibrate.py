"""Fit sizing efficiency factors per (device, engine) to measured bench results.

Objective: the sum over load points of |log(predicted/measured)| of TTFT p50 and ITL p50 (log so
that a 2x miss counts the same either way; absolute, so that one load point the model cannot
describe does not drag the others). Search, in log space over
decode_bandwidth, prefill_compute and step_overhead_s (each clipped to its valid range): a coarse
coordinate scan, then Nelder-Mead to refine; deterministic, no extra dependency.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from waveidp.bench.metrics import ITL, TTFT
from waveidp.bench.predict import mean_abs_error_pct, predict_runs, primary_device
from waveidp.bench.report import BenchReport
from waveidp.errors import InputError

_BOUNDS = {"decode_bandwidth": (1e-3, 1.0), "prefill_compute": (1e-4, 1.0), "step_overhead_s": (1e-6, 0.5)}


@dataclass
class CalibrationFit:
    hardware_id: str
    engine: str
    results: list[str]
    before: Any
    after: Any
    error_before: dict[str, float | None]
    error_after: dict[str, float | None]
    points: int


def _loss(reports: list[BenchReport], eff: Any) -> float:
    total = 0.0
    for report in reports:
        for row in predict_runs(report, eff):
            for metric in (TTFT, ITL):
                p, m = row.value(metric).predicted, row.value(metric).measured
                if p and m and p > 0 and m > 0:
                    total += abs(math.log(p / m))
    return total


def _eff_at(start: Any, x: list[float]) -> Any:
    values = {n: min(hi, max(lo, math.exp(v))) for (n, (lo, hi)), v in zip(_BOUNDS.items(), x, strict=True)}
    return start.model_copy(update=values)


def nelder_mead(
    f: Any, x0: list[float], step: float = 0.5, iters: int = 300, tol: float = 1e-12
) -> list[float]:
    n = len(x0)
    simplex = [list(x0)] + [[v + (step if i == k else 0.0) for i, v in enumerate(x0)] for k in range(n)]
    scores = [f(x) for x in simplex]
    for _ in range(iters):
        order = sorted(range(n + 1), key=lambda k: scores[k])
        simplex, scores = [simplex[k] for k in order], [scores[k] for k in order]
        if scores[-1] - scores[0] < tol:
            break
        centroid = [sum(x[i] for x in simplex[:-1]) / n for i in range(n)]

        worst = simplex[-1]

        def toward(t: float, centroid: list[float] = centroid, worst: list[float] = worst) -> list[float]:
            return [c + t * (w - c) for c, w in zip(centroid, worst, strict=True)]

        refl = toward(-1.0)
        fr = f(refl)
        if fr < scores[0]:
            exp = toward(-2.0)
            fe = f(exp)
            simplex[-1], scores[-1] = (exp, fe) if fe < fr else (refl, fr)
        elif fr < scores[-2]:
            simplex[-1], scores[-1] = refl, fr
        else:
            con = toward(0.5)
            fc = f(con)
            if fc < scores[-1]:
                simplex[-1], scores[-1] = con, fc
            else:  # shrink toward the best vertex
                best = simplex[0]
                simplex = [best] + [
                    [b + 0.5 * (v - b) for b, v in zip(best, x, strict=True)] for x in simplex[1:]
                ]
                scores = [scores[0]] + [f(x) for x in simplex[1:]]
    return simplex[min(range(n + 1), key=lambda k: scores[k])]


def fit(reports: list[BenchReport], start: Any, steps: int = 9) -> Any:
    best, best_loss = start, _loss(reports, start)
    span = 3.0  # natural-log half width of the scan (x20 either way)
    for _ in range(2):
        for name, (lo, hi) in _BOUNDS.items():
            center = max(getattr(best, name), lo)
            for i in range(steps):
                value = min(hi, max(lo, center * math.exp(span * (2 * i / (steps - 1) - 1))))
                cand = best.model_copy(update={name: value})
                loss = _loss(reports, cand)
                if loss < best_loss:
                    best, best_loss = cand, loss
        span /= 3.0
    x0 = [math.log(max(getattr(best, n), lo)) for n, (lo, _) in _BOUNDS.items()]
    x = nelder_mead(lambda v: _loss(reports, _eff_at(start, v)), x0)
    refined = _eff_at(start, x)
    return refined if _loss(reports, refined) < best_loss else best


def calibrate(reports: list[BenchReport]) -> list[CalibrationFit]:
    from waveidp.sizing import efficiency_for

    groups: dict[tuple[str, str], list[BenchReport]] = defaultdict(list)
    for report in reports:
        dep = report.deployment
        if not dep:
            raise InputError(
                "results carry no deployment description",
                where=report.where,
                fix="run wave bench with --model-id, --device and --engine",
            )
        groups[(primary_device(dep), dep.engine)].append(report)
    fits = []
    for (hw, engine), group in sorted(groups.items()):
        before = efficiency_for(hw, engine)
        rows_before = [r for d in group for r in predict_runs(d, before)]
        where = [d.where for d in group]
        if not rows_before:
            raise InputError(f"no completed load point to fit {hw}/{engine} on", where=", ".join(where))
        after = fit(group, before)
        n_runs = len(rows_before)
        after = after.model_copy(
            update={"source": f"wave calibrate: fitted to {n_runs} load point(s) of " + ", ".join(where)}
        )
        rows_after = [r for d in group for r in predict_runs(d, after)]
        fits.append(
            CalibrationFit(
                hw,
                engine,
                where,
                before,
                after,
                mean_abs_error_pct(rows_before),
                mean_abs_error_pct(rows_after),
                n_runs,
            )
        )
    return fits
