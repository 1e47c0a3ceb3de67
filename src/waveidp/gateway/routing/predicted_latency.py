"""Predicted latency: send each request where it is expected to finish first; with an SLO, where it
is expected to meet it, and never into the queue of a backend whose queue is kept for that.

Per backend a `Forecast`: wait for a slot + TTFT(prompt) + max_tokens x ITL(batch). TTFT and ITL
are blends of the sizing prediction for the backend's (device, model, engine) and the EWMA of
what the gateway observed; the prediction dominates until observations accumulate
(`PRIOR_WEIGHT`). The wait comes from the work really outstanding on the backend: the requests
this gateway has in flight there (each with its own max_tokens, progress measured from its first
token), plus the requests the engine reports that came from elsewhere. Below the backend's slot
count a request starts at once (continuous batching, its cost is in ITL); above it, the slots
are simulated first-come-first-served to find when one frees for this request. docs/routing.md
explains the SLO tiers.
"""

from __future__ import annotations

import heapq
import logging
import time
from dataclasses import dataclass

from waveidp.fleet.models import Slo
from waveidp.gateway.backends import DEFAULT_OUTPUT_TOKENS, BackendState, Ewma
from waveidp.gateway.request_info import RequestInfo
from waveidp.gateway.routing.affinity import preferred

log = logging.getLogger("waveidp.gateway.routing")

PRIOR_WEIGHT = 5.0  # observations that count as much as the sizing prediction
AFFINITY_SLACK = 1.25  # keep the affine backend while it is within 25% (+50 ms) of the best
AFFINITY_SLACK_S = 0.05
# A backend "meets" a TTFT SLO when its forecast is within this share of it: the forecast assumes
# every request ahead runs to its max_tokens at the average ITL, and misses by tens of percent
# when the engine's steps stretch (benchmarks/results/routing.json, `slo_headroom`).
SLO_HEADROOM = 0.8
SIMULATED_MAX = 512  # requests ahead simulated one by one; beyond, their work is spread over the slots

# SLO tiers, best first (see `PredictedLatency.rank`).
MEETS, OVERFLOW, SATURATED = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Forecast:
    """What a request would see on one backend."""

    wait_s: float  # until a slot frees for it
    prefill_s: float  # its TTFT once it has a slot
    itl_s: float  # seconds per output token while it runs
    total_s: float  # until its last token

    @property
    def ttft_s(self) -> float:
        return self.wait_s + self.prefill_s


def _blend(obs: Ewma, predicted: float | None) -> float | None:
    if obs.value is None:
        return predicted
    if predicted is None:
        return obs.value
    w = obs.count / (obs.count + PRIOR_WEIGHT)
    return w * obs.value + (1 - w) * predicted


def forecast(b: BackendState, info: RequestInfo, now: float | None = None) -> Forecast | None:
    """What `info` would see on `b` now, or None when nothing is known about `b` yet."""
    now = time.monotonic() if now is None else now
    pred = b.predictions.get(info.model)
    works = list(b.active.values())
    # requests counted but not described (another gateway's, or in flight before tracking began)
    unknown = b.foreign() + max(0, b.inflight - len(works))
    depth = len(works) + unknown
    n_out = 0 if info.endpoint == "embeddings" else (info.max_tokens or DEFAULT_OUTPUT_TOKENS)
    slots = b.slots
    batch = min(depth + 1, slots) if slots else depth + 1
    prefill = _blend(b.ttft, pred.ttft_s(info.prompt_tokens_est) if pred else None)
    itl = _blend(b.itl, pred.itl_s(batch, info.prompt_tokens_est + n_out) if pred else None)
    if prefill is None or itl is None:
        return None
    if not slots:
        wait = depth * prefill  # nothing known about batching: each request ahead costs a prefill
    elif depth < slots:
        wait = 0.0
    else:
        mean_out = sum(w.output_tokens for w in works) / len(works) if works else DEFAULT_OUTPUT_TOKENS
        ahead = [prefill + mean_out / 2 * itl] * unknown  # progress unknown: half their work left
        for w in works:
            if w.first_token is None:
                ahead.append(prefill + w.output_tokens * itl)
            else:
                done = (now - w.first_token) / itl + 1
                ahead.append(max(itl, (w.output_tokens - done) * itl))
        wait = _slot_free_at(ahead, slots)
    # Load on demand: an engine that is not loaded starts this request only once it is
    # (`BackendState.ready_in_s`: its predicted load time, 0 when loaded).
    wait += b.ready_in_s(now)
    return Forecast(wait, prefill, itl, wait + prefill + n_out * itl)


def _slot_free_at(ahead: list[float], slots: int) -> float:
    """When a slot frees for the next request, if `ahead` (remaining seconds of each request ahead,
    in arrival order) fill `slots` first-come-first-served."""
    rest = ahead[SIMULATED_MAX:]
    free = ahead[:slots]
    heapq.heapify(free)
    for need in ahead[slots:SIMULATED_MAX]:
        heapq.heappushpop(free, free[0] + need)
    return free[0] + sum(rest) / slots


def estimate(b: BackendState, info: RequestInfo, now: float | None = None) -> float | None:
    """Seconds until this request would be done on `b`, or None when nothing is known yet."""
    f = forecast(b, info, now)
    return None if f is None else f.total_s


def slo_tier(f: Forecast, slo: Slo) -> int:
    """MEETS: predicted to meet the SLO now. SATURATED: it could when idle but its queue is too
    long now (its queue holds requests that still meet it). OVERFLOW: it cannot meet the SLO even
    idle (too slow), so a request that will miss anyway harms nobody's SLO there."""
    itl_ok = slo.itl_s is None or f.itl_s <= slo.itl_s
    if slo.ttft_s is None:
        return MEETS if itl_ok else OVERFLOW
    if not itl_ok or f.prefill_s > slo.ttft_s * SLO_HEADROOM:
        return OVERFLOW
    return MEETS if f.ttft_s <= slo.ttft_s * SLO_HEADROOM else SATURATED


class PredictedLatency:
    name = "predicted-latency"
    counts_load_time = True  # a backend loaded on demand: its load time is in its forecast

    def __init__(self, *, affinity: bool = True, slo: Slo | None = None) -> None:
        self.affinity = affinity
        self.slo = slo
        self._turn = 0

    def rank(self, candidates: list[BackendState], info: RequestInfo, now: float) -> list[BackendState]:
        if len(candidates) < 2:
            return candidates
        self._turn += 1
        n = len(candidates)
        known = {id(b): forecast(b, info, now) for b in candidates}
        values = [f.total_s for f in known.values() if f is not None]
        # A backend never observed and without a prediction is tried as if it were the best known,
        # one request at a time: while that one runs, it ranks after every backend that is known.
        floor = min(values) if values else 0.0
        exploring = max(values) * 2 + 1.0 if values else 0.0
        order = {id(b): (i - self._turn) % n for i, b in enumerate(candidates)}
        slo = self.slo

        def score(b: BackendState) -> tuple[int, float, float, int]:
            f = known[id(b)]
            if f is None:
                v = (floor if b.inflight == 0 else exploring) + b.ready_in_s(now)  # load on demand
                tier = MEETS if b.inflight == 0 else OVERFLOW
            else:
                v = f.total_s
                tier = slo_tier(f, slo) if slo is not None else MEETS
            return (tier, v, b.queue_depth(), order[id(b)])

        scores = {id(b): score(b) for b in candidates}
        ranked = sorted(candidates, key=lambda b: scores[id(b)])
        if self.affinity and info.affinity and ranked[0].adapter.prefix_cache:
            sticky = preferred(candidates, info.affinity)
            if sticky is not ranked[0] and sticky.adapter.prefix_cache:
                best, mine = scores[id(ranked[0])], scores[id(sticky)]
                if mine[0] == best[0] and mine[1] <= best[1] * AFFINITY_SLACK + AFFINITY_SLACK_S:
                    ranked.remove(sticky)
                    ranked.insert(0, sticky)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("route %s: %s", info.model, ", ".join(_explain(b, known[id(b)], slo) for b in ranked))
        return ranked


def _explain(b: BackendState, f: Forecast | None, slo: Slo | None) -> str:
    if f is None:
        return f"{b.name}=?"
    tier = ("meets", "overflow", "saturated")[slo_tier(f, slo)] if slo is not None else ""
    return f"{b.name}=ttft {f.ttft_s:.3f}s itl {f.itl_s * 1000:.1f}ms total {f.total_s:.3f}s {tier}".rstrip()
