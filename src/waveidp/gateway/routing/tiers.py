"""SLO tiers: which backends a request may go to first when its model has an SLO.

Each forecast is a median with a spread, so it gives the chance that this request, sent there,
meets the SLO (`chance`): the ITL it is expected to average against `itl_s` (spread: how far
streams there lately landed from such forecasts, and how unsure the learned curve still is), its
TTFT against `ttft_s` (spread `TTFT_SPREAD`: the queue model misses by tens of percent when the
engine's steps stretch). The tiers, best first:

- MEETS: forecast to meet it, surely (a chance of at least `SURE`): it has room.
- LIKELY: forecast to meet it (the median does, a chance of at least one half) with its queue
  still within the TTFT margin (`TTFT_SURE`), but close to the ITL bound: a borderline backend (a
  GPU that just makes the bound) still takes requests rather than losing them to a backend that
  cannot meet the SLO at all.

  For both, what the request costs the streams already running there is subtracted from its
  own chance (`harm`): one more sequence and its prefill stretch every step they run, and near
  the bound that costs them together more than this request gains. So a backend takes requests
  while they are worth it, not until its median sits on the bound.
- POSSIBLE: forecast to miss it, but with a fair chance (net of that cost, over `WORTH`) and its
  queue within the TTFT margin: better than a backend that surely misses.
- OVERFLOW: cannot meet it even idle (its prefill alone, or its ITL at batch 1, is over), and
  surely so: the chance that it could is under `OVERFLOW_BELOW`. A request that will miss anyway
  harms no one's SLO there. A backend that may well meet the SLO when idle stays out of this tier
  even when its median says it would not: excess sent to it would take the room of requests that
  meet the SLO there.
- SATURATED: forecast to miss now (its queue is too long, or one more sequence would stretch
  every step past the ITL bound) though it could meet it with less load: sending it there would
  push the requests that still meet the SLO there over it.

So a request never goes to a backend forecast to miss the SLO while one forecast to meet it has
room (MEETS and LIKELY come first); within a tier the policy ranks by forecast (`predicted_latency`).
"""

from __future__ import annotations

import math
from enum import IntEnum

from waveidp.fleet.models import Slo
from waveidp.gateway.routing.forecast import Forecast
from waveidp.gateway.routing.load_curve import QUEUE_PRIOR_SD

SURE = 0.9
WORTH = 0.1
TTFT_SURE = 0.8  # a LIKELY backend still keeps its queue this sure of the TTFT bound
OVERFLOW_BELOW = 0.2


class Tier(IntEnum):
    MEETS = 0
    LIKELY = 1
    POSSIBLE = 2
    OVERFLOW = 3
    SATURATED = 4

    @property
    def label(self) -> str:
        return self.name.lower()


def slo_tier(f: Forecast, slo: Slo) -> Tier:
    return assess(f, slo)[0]


def assess(f: Forecast, slo: Slo) -> tuple[Tier, float]:
    """The tier, and the chance that a request sent now meets the SLO there."""
    p_itl, p_ttft = chances(f, slo)
    p = p_itl * p_ttft
    if p_ttft >= TTFT_SURE:
        value = p - harm(f, slo)
        if value >= SURE:
            return Tier.MEETS, p
        if value >= 0.5:
            return Tier.LIKELY, p
        if value > WORTH:
            return Tier.POSSIBLE, p
    if capable(f, slo) < OVERFLOW_BELOW:
        return Tier.OVERFLOW, p
    return Tier.SATURATED, p


def harm(f: Forecast, slo: Slo) -> float:
    """How much chance of meeting the ITL bound the streams running there lose, together, when this
    request joins them (they all run at the step time it stretches)."""
    if slo.itl_s is None or not f.running or f.slowdown <= 0:
        return 0.0
    s = math.hypot(f.itl_spread, f.sigma_decode)
    before = _below(f.itl_running_s, slo.itl_s, s)
    # a running stream has on average half its life left: its average moves half as far
    after = _below(f.itl_running_s * (1 + f.slowdown / 2), slo.itl_s, s)
    return f.running * max(0.0, before - after)


def chances(f: Forecast, slo: Slo) -> tuple[float, float]:
    """The chances of meeting the ITL and the TTFT bound (their errors taken as independent)."""
    p_itl = p_ttft = 1.0
    if slo.itl_s is not None and f.itl_s > 0:
        p_itl = _below(f.itl_s, slo.itl_s, math.hypot(f.itl_spread, f.sigma_decode))
    if slo.ttft_s is not None:
        p_ttft = _below(f.ttft_s, slo.ttft_s, math.hypot(f.ttft_spread, f.sigma_prefill))
    return p_itl, p_ttft


def capable(f: Forecast, slo: Slo) -> float:
    """The chance that the idle backend meets the SLO."""
    p = 1.0
    if slo.itl_s is not None and f.itl_idle_s > 0:
        p *= _below(f.itl_idle_s, slo.itl_s, math.hypot(f.itl_spread, f.sigma_idle))
    if slo.ttft_s is not None:
        p *= _below(f.prefill_idle_s, slo.ttft_s, math.hypot(QUEUE_PRIOR_SD, f.sigma_prefill))
    return p


def _below(median: float, bound: float, sigma: float) -> float:
    """P(X <= bound) for a log-normal X of this median and log-sd."""
    if sigma <= 0:
        return 1.0 if median <= bound else 0.0
    return 0.5 * math.erfc(-math.log(bound / median) / (sigma * math.sqrt(2)))
