"""What the prompt-cache fits (fit_prompt_cache.py, fit_save_groups.py) share: a squared-log-error
loss over predict_runs rows and a 1-D golden-section search in log space."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any


def log_loss(rows: list[dict[str, Any]], keys: Iterable[str]) -> float:
    keys = tuple(keys)
    return sum(math.log(r[k]["predicted"] / r[k]["measured"]) ** 2 for r in rows for k in keys)


def golden(f: Callable[[float], float], lo: float, hi: float, steps: int) -> float:
    """Minimum of f over [lo, hi] in log space (f is unimodal here)."""
    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    for _ in range(steps):
        c, d = b - g * (b - a), a + g * (b - a)
        if f(math.exp(c)) < f(math.exp(d)):
            b = d
        else:
            a = c
    return math.exp((a + b) / 2)
