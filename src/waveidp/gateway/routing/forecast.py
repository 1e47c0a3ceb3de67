"""What a request would see on one backend: wait for a slot + TTFT + max_tokens x ITL, each from
the backend's learned load curve (`load_curve.LoadCurve`) at the load the request would find, with
how uncertain that is.

The load comes from the work really outstanding on the backend: the requests this gateway has in
flight there (each with its own max_tokens, progress measured from its first token), plus the
requests the engine reports that came from elsewhere. Below the slot count a request starts at
once and joins the batch (its cost is the ITL at the larger batch, which grows as the router
sends more); at or above it, the slots are simulated first-come-first-served to find when one
frees. Prefills of the requests the router keeps sending interleave with the decode steps, so the
ITL also carries the recent prefill rate.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass

from waveidp.gateway.backends import DEFAULT_OUTPUT_TOKENS, BackendState
from waveidp.gateway.request_info import RequestInfo
from waveidp.gateway.routing.load_curve import QUEUE_PRIOR_SD

SIMULATED_MAX = 512  # requests ahead simulated one by one; beyond, their work is spread over the slots


@dataclass(frozen=True, slots=True)
class Forecast:
    """What a request would see on one backend (medians), and how far they may be off."""

    wait_s: float  # until a slot frees for it
    prefill_s: float  # its TTFT once it has a slot
    itl_s: float  # seconds per output token while it runs (0 for embeddings)
    total_s: float  # until its last token
    sigma_decode: float  # log-sd of the decode step (ITL, and the wait behind running requests)
    sigma_prefill: float  # log-sd of the prefill
    itl_idle_s: float  # what it would see on the idle backend: can it meet an SLO at all?
    prefill_idle_s: float
    sigma_idle: float  # log-sd of the idle decode step (an extrapolation when only busy was seen)
    itl_spread: float  # log-sd of how far streams' life ITL lately landed from such forecasts
    ttft_spread: float  # log-sd of the TTFT forecast: the queue model's recent misses when queued
    batch: int  # sequences it would run beside, itself included
    known: bool  # there is a prior or an observation behind it (not only a placeholder)
    speed: tuple[float, float]  # learned (decode, prefill) speed relative to the prior
    # The streams it would slow down: how many run there now, their ITL now, and how much theirs
    # grows (relative) once this request joins: one more sequence and its prefill in their lives.
    running: int = 0
    itl_running_s: float = 0.0
    slowdown: float = 0.0

    @property
    def ttft_s(self) -> float:
        return self.wait_s + self.prefill_s

    @property
    def sigma(self) -> float:
        """Log-sd of the total: each part's spread, weighted by its share (taken as correlated)."""
        if self.total_s <= 0:
            return self.sigma_decode
        decode = self.total_s - self.prefill_s
        return (self.sigma_prefill * self.prefill_s + self.sigma_decode * decode) / self.total_s

    def optimistic(self, z: float) -> Forecast:
        """The same forecast `z` standard deviations faster: what the backend may turn out to be."""
        d, p = math.exp(-z * self.sigma_decode), math.exp(-z * self.sigma_prefill)
        wait, prefill, itl = self.wait_s * d, self.prefill_s * p, self.itl_s * d
        return Forecast(
            wait,
            prefill,
            itl,
            wait + prefill + (self.total_s - self.wait_s - self.prefill_s) * d,
            self.sigma_decode,
            self.sigma_prefill,
            self.itl_idle_s * d,
            self.prefill_idle_s * p,
            self.sigma_idle,
            self.itl_spread,
            self.ttft_spread,
            self.batch,
            self.known,
            self.speed,
            self.running,
            self.itl_running_s * d,
            self.slowdown,
        )


def forecast(b: BackendState, info: RequestInfo, now: float | None = None) -> Forecast:
    """What `info` would see on `b` at `now` (monotonic; default: now). When it would queue, the
    TTFT forecast is noted on `b` for this request, to compare with its TTFT if it is sent there."""
    now = time.monotonic() if now is None else now
    if not b.learning.armed:  # ranked against another backend: from now on it learns
        b.learning.arm(b.occupied(), now)
    pred = b.predictions.get(info.model)
    curve = b.learning.curve(info.model, pred, now)
    works = list(b.active.values())
    # requests counted but not described (another gateway's, or in flight before tracking began)
    unknown = b.foreign() + max(0, b.inflight - len(works))
    depth = len(works) + unknown
    n_out = 0 if info.endpoint == "embeddings" else (info.max_tokens or DEFAULT_OUTPUT_TOKENS)
    prompt = info.prompt_tokens_est
    context = prompt + n_out // 2
    slots = b.slots
    rate = b.learning.prefill_rate(now)
    running = min(depth, slots) if slots else depth
    joins = running if slots is None or depth < slots else slots - 1  # beside it once it has a slot
    batch = joins + 1
    itl = curve.stream_itl_s(batch, context, rate, now) if n_out else 0.0
    prefill = curve.ttft_s(prompt, joins, context)
    if not slots:
        wait = depth * prefill  # nothing known about batching: each request ahead costs a prefill
    elif depth < slots:
        wait = 0.0
    else:
        step = curve.itl_s(running, context, rate)  # the batch the requests ahead run in
        idle_prefill = curve.prefill_s(prompt)
        mean_out = sum(w.output_tokens for w in works) / len(works) if works else DEFAULT_OUTPUT_TOKENS
        ahead = [idle_prefill + mean_out / 2 * step] * unknown  # progress unknown: half their work left
        for w in works:
            if w.first_token is None:
                ahead.append(idle_prefill + w.output_tokens * step)
            else:
                done = (now - w.first_token) / step + 1
                ahead.append(max(step, (w.output_tokens - done) * step))
        wait = _slot_free_at(ahead, slots)
    queued = bool(slots) and depth >= (slots or 0)
    if queued:
        b.learning.forecast_ttft(id(info), wait + prefill)  # compared with its TTFT if it goes there
        bias = math.exp(curve.queue.bias(now))
        wait, prefill = wait * bias, prefill * bias
    # Load on demand: an engine that is not loaded starts this request only once it is
    # (`BackendState.ready_in_s`: its predicted load time, 0 when loaded). Its TTFT is timed from
    # then on, so the queue forecast noted above leaves it out.
    wait += b.ready_in_s(now)
    sigma_decode, sigma_prefill = curve.sigma(batch, now)
    itl_running = slowdown = 0.0
    if n_out and running:
        itl_running = curve.stream_itl_s(running, context, rate, now)
        # its own prefill lands once in the remaining life of each running stream (half of theirs);
        # unqueued, it also makes the batch one larger
        mean_out = sum(w.output_tokens for w in works) / len(works) if works else DEFAULT_OUTPUT_TOKENS
        life = max(1.0, mean_out / 2) * itl_running
        slowdown = curve.prefill_s(prompt) / life + (0.0 if queued else itl / itl_running - 1)
    return Forecast(
        wait_s=wait,
        prefill_s=prefill,
        itl_s=itl,
        total_s=wait + prefill + n_out * itl,
        sigma_decode=sigma_decode,
        sigma_prefill=sigma_prefill,
        itl_idle_s=curve.decode_s(1, context) if n_out else 0.0,
        prefill_idle_s=curve.prefill_s(prompt),
        sigma_idle=curve.sigma(1, now)[0] if batch > 1 else sigma_decode,
        itl_spread=curve.life.spread(now),
        ttft_spread=curve.queue.spread(now) if queued else QUEUE_PRIOR_SD,
        batch=batch,
        known=pred is not None or curve.observations > 0,
        speed=curve.speed(),
        running=running if itl_running else 0,
        itl_running_s=itl_running,
        slowdown=slowdown,
    )


def _slot_free_at(ahead: list[float], slots: int) -> float:
    """When a slot frees for the next request, if `ahead` (remaining seconds of each request ahead,
    in arrival order) fill `slots` first-come-first-served."""
    rest = ahead[SIMULATED_MAX:]
    free = ahead[:slots]
    heapq.heapify(free)
    for need in ahead[slots:SIMULATED_MAX]:
        heapq.heappushpop(free, free[0] + need)
    return free[0] + sum(rest) / slots
