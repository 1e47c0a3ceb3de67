"""Fit sizing efficiency factors per (device, engine) to measured bench results.

Objective: the sum over load points of squared log-ratios predicted/measured of TTFT p50 and ITL
p50 (log so that a 2x miss counts the same either way). Search: coordinate descent in log space
over decode_bandwidth, prefill_compute and step_overhead_s, each within its valid range, with a
shrinking window; deterministic, no extra dependency, a few thousand model evaluations.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from waveidp.bench.predict import mean_abs_error_pct, predict_runs
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


def _loss(docs: list[dict[str, Any]], eff: Any) -> float:
    total = 0.0
    for doc in docs:
        for row in predict_runs(doc, eff):
            for key in ("ttft_ms", "itl_ms"):
                p, m = row[key]["predicted"], row[key]["measured"]
                if p and m and p > 0 and m > 0:
                    total += math.log(p / m) ** 2
    return total


def fit(docs: list[dict[str, Any]], start: Any, rounds: int = 5, steps: int = 9) -> Any:
    best, best_loss = start, _loss(docs, start)
    span = 3.0  # natural-log half width of the first window (x20 either way)
    for _ in range(rounds):
        for name, (lo, hi) in _BOUNDS.items():
            center = max(getattr(best, name), lo)
            for i in range(steps):
                value = min(hi, max(lo, center * math.exp(span * (2 * i / (steps - 1) - 1))))
                cand = best.model_copy(update={name: value})
                loss = _loss(docs, cand)
                if loss < best_loss:
                    best, best_loss = cand, loss
        span /= 2.5
    return best


def calibrate(docs: list[dict[str, Any]]) -> list[CalibrationFit]:
    from waveidp.sizing import efficiency_for

    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for doc in docs:
        dep = doc.get("deployment")
        if not dep:
            raise InputError(
                "results carry no deployment description",
                where=doc.get("_path"),
                fix="run wave bench with --model-id, --device and --engine",
            )
        groups[(str(dep["devices"][0]), str(dep["engine"]))].append(doc)
    fits = []
    for (hw, engine), group in sorted(groups.items()):
        before = efficiency_for(hw, engine)
        rows_before = [r for d in group for r in predict_runs(d, before)]
        if not rows_before:
            raise InputError(
                f"no completed load point to fit {hw}/{engine} on",
                where=", ".join(str(d.get("_path")) for d in group),
            )
        after = fit(group, before)
        n_runs = len(rows_before)
        after = after.model_copy(
            update={
                "source": f"wave calibrate: fitted to {n_runs} load point(s) of "
                + ", ".join(str(d.get("_path")) for d in group)
            }
        )
        rows_after = [r for d in group for r in predict_runs(d, after)]
        fits.append(
            CalibrationFit(
                hw,
                engine,
                [str(d.get("_path")) for d in group],
                before,
                after,
                mean_abs_error_pct(rows_before),
                mean_abs_error_pct(rows_after),
                n_runs,
            )
        )
    return fits
