"""Predicted latency: send each request where it is expected to finish first.

Per backend: `queue wait + TTFT(prompt) + max_tokens x ITL(batch)`. TTFT and ITL are blends of
the sizing prediction for the backend's (device, model, engine) and the EWMA of what the gateway
observed; the prediction dominates until observations accumulate (`PRIOR_WEIGHT`). The queue is
the larger of the engine's own count (scraped `/metrics`) and the gateway's in-flight count.
Below the backend's slot count a request starts at once (continuous batching) and the batch cost
is in ITL; above it, it waits for slots to free. Without a slot count each request ahead is
assumed to delay ours by one prefill.
"""

from __future__ import annotations

import logging

from waveidp.gateway.backends import BackendState, Ewma
from waveidp.gateway.request_info import RequestInfo
from waveidp.gateway.routing.affinity import preferred

log = logging.getLogger("waveidp.gateway.routing")

PRIOR_WEIGHT = 5.0  # observations that count as much as the sizing prediction
DEFAULT_OUTPUT_TOKENS = 256  # when a request sets no max_tokens
AFFINITY_SLACK = 1.25  # keep the affine backend while it is within 25% (+50 ms) of the best
AFFINITY_SLACK_S = 0.05


def _blend(obs: Ewma, predicted: float | None) -> float | None:
    if obs.value is None:
        return predicted
    if predicted is None:
        return obs.value
    w = obs.count / (obs.count + PRIOR_WEIGHT)
    return w * obs.value + (1 - w) * predicted


def estimate(b: BackendState, info: RequestInfo) -> float | None:
    """Seconds until this request would be done on `b`, or None when nothing is known yet."""
    pred = b.predictions.get(info.model)
    depth = b.queue_depth()
    n_out = 0 if info.endpoint == "embeddings" else (info.max_tokens or DEFAULT_OUTPUT_TOKENS)
    ttft = _blend(b.ttft, pred.ttft_s(info.prompt_tokens_est) if pred else None)
    itl = _blend(b.itl, pred.itl_s(int(depth) + 1, info.prompt_tokens_est + n_out) if pred else None)
    if ttft is None or itl is None:
        return None
    slots = b.max_concurrency or (pred.slots if pred else None)
    if slots:
        ahead = max(0.0, depth - slots + 1)
        wait = ahead / slots * (ttft + DEFAULT_OUTPUT_TOKENS * itl)
    else:
        wait = depth * ttft
    return wait + ttft + n_out * itl


class PredictedLatency:
    name = "predicted-latency"

    def __init__(self, *, affinity: bool = True) -> None:
        self.affinity = affinity
        self._turn = 0

    def rank(self, candidates: list[BackendState], info: RequestInfo, now: float) -> list[BackendState]:
        if len(candidates) < 2:
            return candidates
        self._turn += 1
        n = len(candidates)
        known = {id(b): estimate(b, info) for b in candidates}
        values = [v for v in known.values() if v is not None]
        # A backend never observed and without a prediction is tried as if it were the best known,
        # one request at a time: while that one runs, it ranks after every backend that is known.
        floor = min(values) if values else 0.0
        exploring = max(values) * 2 + 1.0 if values else 0.0
        order = {id(b): (i - self._turn) % n for i, b in enumerate(candidates)}

        def score(b: BackendState) -> tuple[float, float, int]:
            v = known[id(b)]
            if v is None:
                v = floor if b.inflight == 0 else exploring
            return (v, b.queue_depth(), order[id(b)])

        ranked = sorted(candidates, key=score)
        if self.affinity and info.affinity and ranked[0].adapter.prefix_cache:
            sticky = preferred(candidates, info.affinity)
            if sticky is not ranked[0] and sticky.adapter.prefix_cache:
                best, mine = score(ranked[0])[0], score(sticky)[0]
                if mine <= best * AFFINITY_SLACK + AFFINITY_SLACK_S:
                    ranked.remove(sticky)
                    ranked.insert(0, sticky)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "route %s: %s",
                info.model,
                ", ".join(f"{b.name}={known[id(b)] if known[id(b)] is not None else '?'}" for b in ranked),
            )
        return ranked
