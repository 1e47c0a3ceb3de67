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
5. The wait bound (`shed_after_s`): a backend forecast to start this request later than that goes
   behind every backend that starts it sooner (a client gives up long before: the queue of an
   overflow backend must not grow without end under overload). When every backend is beyond it,
   or when, with an SLO, the only ones within it are saturated (this request, which cannot meet
   the SLO anywhere, would push requests that meet it there over it), the request is refused:
   `Ranked.shed_s` says when to retry, and the gateway answers 503 `overloaded` with Retry-After.
   Like llm-d's SLO scorer, which sheds a request no pod has headroom for; unlike it, one that
   can still start within the bound on a backend it harms no one on is served.

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

    def __init__(
        self,
        *,
        affinity: bool = True,
        slo: Slo | None = None,
        explore: bool = True,
        shed_after_s: float | None = None,
    ) -> None:
        self.affinity = affinity
        self.slo = slo
        self.shed_after_s = shed_after_s
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
        shed_s = None
        if self.shed_after_s is not None:
            ranked, reason, shed_s = self._bound(ranked, reason, forecasts, tiers, self.shed_after_s)
        out = Ranked(ranked, reason, self._explainer(info.model, forecasts, tiers, depths, chances))
        out.shed_s = shed_s
        return out

    def _bound(
        self,
        ranked: list[BackendState],
        reason: Reason,
        forecasts: dict[int, Forecast],
        tiers: dict[int, Tier],
        bound: float,
    ) -> tuple[list[BackendState], Reason, float | None]:
        """`ranked` with the backends forecast to start it past `bound` behind the others, and
        whether to refuse it instead (seconds after which to retry, or None)."""
        late = {id(b) for b in ranked if forecasts[id(b)].known and forecasts[id(b)].ttft_s > bound}
        if not late:
            return ranked, reason, None
        within = [b for b in ranked if id(b) not in late]
        if not within:
            drained = min(forecasts[id(b)].ttft_s for b in ranked) - bound
            return ranked, "shed", max(1.0, drained)
        beyond = [b for b in ranked if id(b) in late]
        if id(ranked[0]) not in late:
            return within + beyond, reason, None
        # the policy chose a backend where it harms no one's SLO, and the only others would be harmed
        slo, chosen, next_best = self.slo, tiers[id(ranked[0])], tiers[id(within[0])]
        if slo is not None and chosen < Tier.SATURATED and next_best == Tier.SATURATED:
            f = forecasts[id(within[0])]  # until its queue is back within the SLO's TTFT
            return within + beyond, "shed", max(1.0, f.ttft_s - (slo.ttft_s or 0.0))
        return within + beyond, "wait-bound", None

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
                _detail(ranked, forecasts, tiers, depths, slo is not None, self.shed_after_s or 0.0),
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
    bound: float,
) -> str:
    w = ranked[0]
    f = forecasts[id(w)]
    tier = f"{tiers[id(w)].label}, " if with_slo else ""
    if ranked.reason == "shed":
        if all(forecasts[id(b)].ttft_s > bound for b in ranked):
            soonest = min(ranked, key=lambda b: forecasts[id(b)].ttft_s)
            first = forecasts[id(soonest)].ttft_s
            return f"every forecast first token is past {bound:g}s (soonest {first:.1f}s, {soonest.name})"
        return (
            f"no backend can meet the SLO; within {bound:g}s only saturated ones, which it would"
            " push the requests meeting the SLO there over"
        )
    if ranked.reason == "wait-bound":
        return f"{tier}the better-ranked ones' forecast first token is past {bound:g}s; here {f.ttft_s:.2f}s"
    if ranked.reason == "exploration" and not f.known:
        return "no prior and nothing observed yet: its first request"
    if ranked.reason == "exploration":
        return f"its forecast is uncertain (±{f.sigma * 100:.0f}%) and at its best it would win"
    if ranked.reason == "uncertain-tie":
        return f"{tier}forecasts within their uncertainty of the best; fewest outstanding ({depths[id(w)]:g})"
    if ranked.reason == "affinity":
        return f"{tier}the session's backend, behind the best forecast by less than its prefill"
    return f"{tier}least forecast total {f.total_s:.3f}s"
