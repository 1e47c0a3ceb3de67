"""Bounded exploration: a request now and then to a backend whose forecast is uncertain, when what
it might turn out to be could change where requests go.

Without it a backend whose prior rules it out is never sent a request, so a wrong prior is never
corrected (a GPU slower than predicted keeps the traffic, a Jetson faster than predicted never
gets any). A backend is explored with this request when all of these hold:

- its forecast is uncertain: a log-sd over `EXPLORE_SIGMA` (a catalog-default prior that has seen
  nothing, or a learned curve whose spread has grown back while it was not used);
- none of this gateway's requests is in flight there (those will report), and it was not
  explored in the last `PROBE_INTERVAL_S`;
- optimistically (`EXPLORE_Z` standard deviations faster) it would have been ranked ahead of the
  winner: a better tier, or the same tier and a shorter total. A backend that could not win even
  at its best is not worth a request;
- the tier rule holds: while the winner is forecast to meet the SLO, only a backend whose own
  forecast also meets it is explored (a request is never sent to a backend forecast to miss while one forecast
  to meet has room);
- the budget allows: at most `EXPLORE_SHARE` of the decisions (plus one) explore.

A backend with neither a prior nor an observation is forecast nothing: it gets its first request
as soon as it is idle, outside the budget (once per backend; then it is known).

So with right priors on a fleet that meets the SLO, nothing is explored (the benchmark counts it);
when the favoured backend is full or turns out too slow, the others are tried one request at a
time, where that request would have missed the SLO on the winner anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from waveidp.gateway.backends import BackendState
from waveidp.gateway.routing.forecast import Forecast
from waveidp.gateway.routing.tiers import Tier

EXPLORE_SIGMA = 0.25  # ln(1.28): an estimate more uncertain than +-28 % is worth refreshing
EXPLORE_Z = 1.5
PROBE_INTERVAL_S = 1.0
EXPLORE_SHARE = 0.05


@dataclass(slots=True)
class Explorer:
    budget: float = 1.0  # explorations allowed now (refilled by EXPLORE_SHARE per decision)
    last: dict[str, float] = field(default_factory=dict)  # backend name -> when it was last explored
    explored: int = 0

    def choose(
        self,
        ranked: list[BackendState],
        forecasts: dict[int, Forecast],
        tiers: dict[int, Tier],
        tier_of: Callable[[Forecast], Tier],
        now: float,
    ) -> BackendState | None:
        """The backend to explore with this request instead of `ranked[0]`, or None."""
        self.budget = min(1.0, self.budget + EXPLORE_SHARE)
        best = ranked[0]
        best_tier, best_total = tiers[id(best)], forecasts[id(best)].total_s
        for b in ranked[1:]:
            f = forecasts[id(b)]
            if max(f.sigma_decode, f.sigma_prefill) < EXPLORE_SIGMA or b.inflight:
                continue
            if now - self.last.get(b.name, -PROBE_INTERVAL_S) < PROBE_INTERVAL_S:
                continue
            if f.known:
                if self.budget < 1.0 or (best_tier <= Tier.LIKELY < tiers[id(b)]):
                    continue
                opt = f.optimistic(EXPLORE_Z)
                if (tier_of(opt), opt.total_s) >= (best_tier, best_total):
                    continue
                self.budget -= 1.0
            self.last[b.name] = now
            self.explored += 1
            return b
        return None
