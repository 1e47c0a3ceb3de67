"""Summary of one metric across requests: mean and the percentiles every report shows."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from pydantic import BaseModel, ConfigDict

PERCENTILES = (50, 90, 95, 99)


class Distribution(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int
    mean: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    min: float | None
    max: float | None


def distribution(values: Iterable[float | None], scale: float = 1.0) -> Distribution:
    """Mean/percentiles (numpy linear interpolation, as AIPerf) of the defined values times `scale`."""
    arr = np.array([v for v in values if v is not None], dtype=float) * scale
    if arr.size == 0:
        return Distribution(count=0, mean=None, p50=None, p90=None, p95=None, p99=None, min=None, max=None)
    p50, p90, p95, p99 = (float(x) for x in np.percentile(arr, PERCENTILES))
    return Distribution(
        count=int(arr.size),
        mean=float(arr.mean()),
        p50=p50,
        p90=p90,
        p95=p95,
        p99=p99,
        min=float(arr.min()),
        max=float(arr.max()),
    )
