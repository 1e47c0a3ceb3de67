"""Predicted latency: send each request where it is forecast to finish first; with an SLO, where it
is forecast to meet it, and never into a backend whose room is kept for the requests that do.

Per candidate a `forecast.Forecast` (from the backend's learned load curve, the work outstanding
there and the load this request adds), then:

1. SLO tier first (`tiers`): meets, likely, possible, overflow, saturated.
2. Within the best tier, the least forecast total time; but the backends whose forecasts cannot be
   told apart from the best one's (their difference is within `TIE_Z` standard deviations of the
   two spreads) are tied, and a tie goes to the one with the fewest requests outstanding. So when
   every forecast is uncertain (no priors, nothing observed yet) the policy acts like
   least-outstanding, and as forecasts firm up it acts on them.
3. Exploration (`exploration.Explorer`) may give this request to an uncertain backend instead.
4. Affinity keeps a session on its backend while that one is in the same tier and close to the
   best (prefix caches): behind it by at most a quarter, and by no more than the prefill a cache
   hit could save there (a queue or a slower decode is not made good by a cached prefix).

`Ranked.trace()` explains the decision (docs/routing.md); the gateway logs it at debug level.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from waveidp.fleet.models import Slo
from waveidp.gateway.backends import BackendState
from waveidp.gateway.request_info import RequestInfo
from waveidp.gateway.routing.affinity import preferred
from waveidp.gateway.routing.exploration import Explorer
from waveidp.gateway.routing.forecast import Forecast, forecast
from waveidp.gateway.routing.tiers import Tier, assess, slo_tier
from waveidp.gateway.routing.trace import CandidateTrace, Ranked, Reason, RouteTrace, by_outstanding

# Keep the affine backend while it is within 25 % (+50 ms) of the best, and never further behind
# than its prefill there: a prefix-cache hit saves at most that, not time queued or decoding.
AFFINITY_SLACK = 1.25
AFFINITY_SLACK_S = 0.05
TIE_Z = 0.5


def estimate(b: BackendState, info: RequestInfo, now: float | None = None) -> float:
    """Seconds until this request would be done on `b` (the forecast's median)."""
    return forecast(b, info, now).total_s


class PredictedLatency:
    name = "predicted-latency"
    counts_load_time = True  # a backend loaded on demand: its load time is in its forecast

    def __init__(self, *, affinity: bool = True, slo: Slo | None = None, explore: bool = True) -> None:
        self.affinity = affinity
        self.slo = slo
        self.explorer = Explorer() if explore else None
        self._turn = 0

    def tier_of(self, f: Forecast) -> Tier:
        return slo_tier(f, self.slo) if self.slo is not None else Tier.MEETS

    def rank(self, candidates: list[BackendState], info: RequestInfo, now: float) -> Ranked:
        if len(candidates) < 2:
            return Ranked(
                candidates, "only-backend", by_outstanding(self.name, info.model, "one routable backend")
            )
        self._turn += 1
        n = len(candidates)
        forecasts = {id(b): forecast(b, info, now) for b in candidates}
        slo = self.slo
        tiers: dict[int, Tier] = {}
        chances: dict[int, float] = {}
        for b in candidates:
            tiers[id(b)], chances[id(b)] = assess(forecasts[id(b)], slo) if slo else (Tier.MEETS, 1.0)
        depths = {id(b): b.queue_depth() for b in candidates}
        order = {id(b): (i - self._turn) % n for i, b in enumerate(candidates)}

        def key(b: BackendState) -> tuple[int, float, float, float, int]:
            tier = tiers[id(b)]
            # a borderline backend: the better its chance, the sooner
            likely = -round(chances[id(b)], 1) if tier in (Tier.LIKELY, Tier.POSSIBLE) else 0.0
            return (tier, likely, forecasts[id(b)].total_s, depths[id(b)], order[id(b)])

        ranked = sorted(candidates, key=key)
        reason: Reason = "best-forecast"
        tied = _tied(ranked, forecasts, tiers)
        if len(tied) > 1:
            pick = min(tied, key=lambda b: (depths[id(b)], forecasts[id(b)].total_s, order[id(b)]))
            if pick is not ranked[0]:
                ranked.remove(pick)
                ranked.insert(0, pick)
                reason = "uncertain-tie"
        if self.explorer is not None:
            probe = self.explorer.choose(ranked, forecasts, tiers, self.tier_of, now)
            if probe is not None:
                ranked.remove(probe)
                ranked.insert(0, probe)
                reason = "exploration"
        if reason != "exploration" and self.affinity and info.affinity and ranked[0].adapter.prefix_cache:
            sticky = preferred(candidates, info.affinity)
            if sticky is not ranked[0] and sticky.adapter.prefix_cache:
                best, mine = forecasts[id(ranked[0])], forecasts[id(sticky)]
                slack = min(best.total_s * (AFFINITY_SLACK - 1), mine.prefill_s) + AFFINITY_SLACK_S
                if tiers[id(sticky)] == tiers[id(ranked[0])] and mine.total_s <= best.total_s + slack:
                    ranked.remove(sticky)
                    ranked.insert(0, sticky)
                    reason = "affinity"
        return Ranked(ranked, reason, self._explainer(info.model, forecasts, tiers, depths, chances))

    def _explainer(
        self,
        model: str,  # not the request: the console keeps decisions, and a request holds its prompt
        forecasts: dict[int, Forecast],
        tiers: dict[int, Tier],
        depths: dict[int, float],
        chances: dict[int, float],
    ) -> Callable[[Ranked], RouteTrace]:
        slo = self.slo

        def explain(ranked: Ranked) -> RouteTrace:
            views = tuple(
                _view(
                    b,
                    forecasts[id(b)],
                    tiers[id(b)] if slo is not None else None,
                    depths[id(b)],
                    chances[id(b)] if slo is not None else None,
                )
                for b in ranked
            )
            return RouteTrace(
                self.name,
                model,
                ranked[0].name,
                ranked.reason,
                _detail(ranked, forecasts, tiers, depths, slo is not None),
                views,
                self._slo_dict(),
            )

        return explain

    def _slo_dict(self) -> dict[str, float] | None:
        if self.slo is None:
            return None
        return {k: v for k, v in (("ttft_s", self.slo.ttft_s), ("itl_s", self.slo.itl_s)) if v is not None}


def _tied(
    ranked: list[BackendState], forecasts: dict[int, Forecast], tiers: dict[int, Tier]
) -> list[BackendState]:
    """The backends of the best tier whose forecast cannot be told apart from the best one's."""
    best = forecasts[id(ranked[0])]
    tier = tiers[id(ranked[0])]
    out = [ranked[0]]
    for b in ranked[1:]:
        if tiers[id(b)] != tier:
            break
        f = forecasts[id(b)]
        gap = math.log(max(f.total_s, 1e-9) / max(best.total_s, 1e-9))
        if gap <= TIE_Z * math.hypot(f.sigma, best.sigma):
            out.append(b)
    return out


def _view(b: BackendState, f: Forecast, tier: Tier | None, depth: float, p: float | None) -> CandidateTrace:
    return CandidateTrace(
        backend=b.name,
        outstanding=depth,
        tier=tier.label if tier is not None else None,
        slo_chance=round(p, 3) if p is not None else None,
        wait_s=round(f.wait_s, 4),
        ttft_s=round(f.ttft_s, 4),
        itl_s=round(f.itl_s, 5),
        total_s=round(f.total_s, 4),
        uncertainty=round(f.sigma, 3),
        batch=f.batch,
        decode_speed=round(f.speed[0], 3),
        prefill_speed=round(f.speed[1], 3),
        known=f.known,
    )


def _detail(
    ranked: Ranked,
    forecasts: dict[int, Forecast],
    tiers: dict[int, Tier],
    depths: dict[int, float],
    with_slo: bool,
) -> str:
    w = ranked[0]
    f = forecasts[id(w)]
    tier = f"{tiers[id(w)].label}, " if with_slo else ""
    if ranked.reason == "exploration" and not f.known:
        return "no prior and nothing observed yet: its first request"
    if ranked.reason == "exploration":
        return f"its forecast is uncertain (±{f.sigma * 100:.0f}%) and at its best it would win"
    if ranked.reason == "uncertain-tie":
        return f"{tier}forecasts within their uncertainty of the best; fewest outstanding ({depths[id(w)]:g})"
    if ranked.reason == "affinity":
        return f"{tier}the session's backend, behind the best forecast by less than its prefill"
    return f"{tier}least forecast total {f.total_s:.3f}s"
