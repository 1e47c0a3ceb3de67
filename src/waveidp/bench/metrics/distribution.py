"""Summary of one metric across requests: mean and the percentiles every report shows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class Distribution:
    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    min: float | None
    max: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def distribution(values: Iterable[float | None], scale: float = 1.0) -> Distribution:
    """Mean/percentiles (numpy linear interpolation, as AIPerf) of the defined values times `scale`."""
    arr = np.array([v for v in values if v is not None], dtype=float) * scale
    if arr.size == 0:
        return Distribution(0, None, None, None, None, None, None, None)
    p50, p90, p95, p99 = (float(x) for x in np.percentile(arr, PERCENTILES))
    return Distribution(
        int(arr.size), float(arr.mean()), p50, p90, p95, p99, float(arr.min()), float(arr.max())
    )
