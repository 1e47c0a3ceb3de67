"""SLO tiers: which backends a request may go to first when its model has an SLO.

- MEETS: forecast to meet the SLO with this request on it (TTFT within `TTFT_HEADROOM` of the
  bound, ITL at the batch it would make within `ITL_HEADROOM`): it has room.
- OVERFLOW: cannot meet it even idle (its prefill alone, or its ITL at batch 1, is over), and
  surely so: the chance that it could (from the idle forecast's spread) is under
  `OVERFLOW_BELOW`. A request that will miss anyway harms no one's SLO there. A backend that may
  well meet the SLO when idle is kept out of this tier even if its median says it would not: the
  excess sent to it would take the room of requests that meet the SLO there.
- SATURATED: could meet it with less load, but not with this request added (its queue is too
  long, or one more sequence would stretch every step past the ITL bound): sending it there
  would push the requests that still meet the SLO there over it.

The ranking is tier first, so a request never goes to a backend forecast to miss while one
forecast to meet has room. Medians decide the tier; the spread of a forecast only decides ties
within one (`predicted_latency`).
"""

from __future__ import annotations

import math
from enum import IntEnum

from waveidp.fleet.models import Slo
from waveidp.gateway.routing.forecast import Forecast

# The forecast assumes every request ahead runs to its max_tokens at the learned ITL and misses by
# tens of percent when the engine's steps stretch (benchmarks/results/routing.json, `headroom`).
TTFT_HEADROOM = 0.8
# A stream's ITL is its average over its life: more requests join after it starts.
ITL_HEADROOM = 0.9
OVERFLOW_BELOW = 0.2  # a chance under this that the idle backend meets the SLO: overflow


class Tier(IntEnum):
    MEETS = 0
    OVERFLOW = 1
    SATURATED = 2

    @property
    def label(self) -> str:
        return self.name.lower()


def slo_tier(f: Forecast, slo: Slo) -> Tier:
    itl_bound = slo.itl_s * ITL_HEADROOM if slo.itl_s is not None else None
    ttft_bound = slo.ttft_s * TTFT_HEADROOM if slo.ttft_s is not None else None
    if capable(f, itl_bound, ttft_bound) < OVERFLOW_BELOW:
        return Tier.OVERFLOW
    if (itl_bound is not None and f.itl_s > itl_bound) or (ttft_bound is not None and f.ttft_s > ttft_bound):
        return Tier.SATURATED
    return Tier.MEETS


def capable(f: Forecast, itl_bound: float | None, ttft_bound: float | None) -> float:
    """The chance that the idle backend meets both bounds (log-normal forecasts; the lesser of the
    two chances, as decode and prefill errors go together)."""
    p = 1.0
    if itl_bound is not None and f.itl_idle_s > 0:
        p = min(p, _below(f.itl_idle_s, itl_bound, f.sigma_idle))
    if ttft_bound is not None:
        p = min(p, _below(f.prefill_idle_s, ttft_bound, f.sigma_prefill))
    return p


def _below(median: float, bound: float, sigma: float) -> float:
    if sigma <= 0:
        return 1.0 if median <= bound else 0.0
    return 0.5 * math.erfc(-math.log(bound / median) / (sigma * math.sqrt(2)))
