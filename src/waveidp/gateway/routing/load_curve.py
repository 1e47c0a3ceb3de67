"""One backend's load curve for one model, learned online from what the gateway observes.

The shape comes from the sizing prior (`gateway.prediction`); three numbers are learned on top:

    decode step  D(n, ctx) = exp(a + c * ln n) * prior_itl(n, ctx)     n = sequences in the batch
    prefill      P(prompt) = exp(b) * prior_ttft(prompt)

`a` is how much slower (a > 0) or faster the backend decodes than predicted, `b` the same for
prompt processing, `c` how much more (or less) steeply a step grows with the batch than sizing
says. A request's observed times are sums of such terms, because continuous batching interleaves
them: the ITL a stream sees is the decode step at its batch plus the prefills of the requests that
joined meanwhile, spread over its tokens; an unqueued request's TTFT is its prefill plus the part
of a step it waits for. The gateway knows the batch each request saw (the time-average of its
requests in flight there, `routing.learning`) and the prefill work that landed meanwhile, so each
observation says something about a, b and c at once.

The belief about (a, b, c) is Gaussian, updated per observation by an extended Kalman filter in
log space (errors of a prior are multiplicative: "2x slower", not "+10 ms"):

- It starts at 0 (the prior is right) with a spread set by the prior's provenance
  (`PRIOR_SIGMA`): a calibrated node's prior is trusted (+-15 %), a catalog default is not (a
  factor of 2), a backend without one is unknown. So the first few observations move a default
  prior all the way, and a calibrated one only as far as the evidence insists.
- It drifts: without observations its spread grows (`DRIFT_PER_S`) back towards the prior's, so a
  backend that left the favoured set becomes uncertain again, and exploration
  (`routing.exploration`) asks it again when that could change a decision.
- An observation far outside the belief (a stall, a GC pause) moves it at most 3 standard
  deviations' worth.

Beside the curve, two residuals: `life`, how the ITL a stream averaged over its life compared
with the curve's forecast for the load it was sent into (more requests join while it runs, the
curve is a model), and `queue`, how a queued request's TTFT compared with the queue forecast
when it was sent. Their means correct the forecasts; their spreads are the forecasts' errors in
the SLO tiers' chances.

Pure: no clocks, no sockets; callers pass times.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from waveidp.gateway.prediction import Prediction, Provenance

# Spread (log-sd) of a prior by where it comes from: ln(1.15), ln(1.4), ln(2).
PRIOR_SIGMA: dict[Provenance, float] = {"calibrated": 0.15, "reference": 0.35, "default": 0.7}
UNKNOWN_SIGMA = 2.0  # no prediction at all: a placeholder that the first observation replaces
UNKNOWN_ITL_S = 0.05  # the placeholder's decode step and prefill (flat in batch and prompt)
UNKNOWN_TTFT_S = 0.2
# The batch exponent c (x ln n): the prior's shape is trusted far more than its scale. Loose, it
# lets a backend seen only at one batch (a full GPU) trade scale for shape along the data, and
# its idle speed, extrapolated, goes wrong (docs/routing.md, failure modes).
SHAPE_SIGMA = 0.05
UNKNOWN_SHAPE_SIGMA = 0.2
PRIOR_CORRELATION = 0.5  # a device off in decode is likely off in prefill the same way
DRIFT_PER_S = 0.3**2 / 120  # variance a scale regains per second unobserved (0.3 log-sd in 2 min)
SHAPE_DRIFT_PER_S = 0.05**2 / 120
# Observation noise (log space): ITL over k tokens, TTFT (the step phase it lands in varies).
ITL_NOISE = 0.02
ITL_NOISE_PER_TOKEN = 0.1
TTFT_NOISE = 0.25**2
E2E_NOISE = 0.2**2
MAX_INNOVATION_SD = 3.0
# An unqueued request joining a busy batch waits for the step under way (half a step on average)
# and then for its own step, which decodes the others too.
STEP_WAIT_STEPS = 1.5
MAX_PREFILL_SHARE = 0.6  # prefills can take at most this share of a busy engine's time in a forecast

# The life residual: an exponentially weighted mean and variance over about this many streams,
# starting from a spread that is worth RESIDUAL_PRIOR_N streams.
RESIDUAL_WINDOW = 50
RESIDUAL_PRIOR_SD = 0.1
RESIDUAL_PRIOR_N = 5.0
RESIDUAL_FADE_S = 10.0
# The queue model's error before any queued request came back: at 0.8 of the TTFT bound a request
# is forecast to meet it with ~80 % (the margin the benchmark's queue needed before).
QUEUE_PRIOR_SD = 0.25

Vec = tuple[float, float, float]


@dataclass(slots=True)
class Residual:
    """Log-ratios of realized to forecast times: their recent mean and spread (`prior_sd` before
    any). What they say fades (`RESIDUAL_FADE_S`) when no new ones come: a backend that stopped
    getting requests, because its last ones landed badly, is judged on its prior margin again
    before long."""

    prior_sd: float = RESIDUAL_PRIOR_SD
    mean: float = 0.0
    var: float = 0.0
    weight: float = 0.0  # streams behind it, at most RESIDUAL_WINDOW
    updated: float = 0.0

    def observe(self, log_ratio: float, now: float) -> None:
        self.weight = min(self._weight(now) + 1.0, RESIDUAL_WINDOW)
        self.updated = now
        a = 1.0 / self.weight
        delta = log_ratio - self.mean
        self.mean += a * delta
        self.var += a * (delta * (log_ratio - self.mean) - self.var)

    def _weight(self, now: float | None) -> float:
        if now is None or now <= self.updated:
            return self.weight
        return self.weight * math.exp(-(now - self.updated) / RESIDUAL_FADE_S)

    def bias(self, now: float | None = None) -> float:
        """The mean, shrunk towards 0 while few (or only old) streams are behind it."""
        w = self._weight(now)
        return self.mean * w / (w + RESIDUAL_PRIOR_N)

    def spread(self, now: float | None = None) -> float:
        w = self._weight(now)
        return math.sqrt((RESIDUAL_PRIOR_N * self.prior_sd**2 + w * self.var) / (RESIDUAL_PRIOR_N + w))


DECODE, PREFILL = 0, 1


@dataclass(slots=True)
class LoadCurve:
    prior: Prediction | None
    mean: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    cov: list[list[float]] = field(default_factory=list)
    prior_var: tuple[float, float, float] = (0.0, 0.0, 0.0)
    updated: float | None = None  # when drift was last applied
    observations: int = 0
    life: Residual = field(default_factory=Residual)  # streams' life ITL vs the forecast at sending
    queue: Residual = field(default_factory=lambda: Residual(QUEUE_PRIOR_SD))  # queued requests' TTFT

    @classmethod
    def start(cls, prior: Prediction | None, now: float | None = None) -> LoadCurve:
        s = PRIOR_SIGMA[prior.provenance] if prior is not None else UNKNOWN_SIGMA
        sc = SHAPE_SIGMA if prior is not None else UNKNOWN_SHAPE_SIGMA
        ab = PRIOR_CORRELATION * s * s
        cov = [[s * s, ab, 0.0], [ab, s * s, 0.0], [0.0, 0.0, sc * sc]]
        return cls(prior, cov=cov, prior_var=(s * s, s * s, sc * sc), updated=now)

    # ---- the prior's shape ------------------------------------------------------------------
    def prior_itl(self, batch: int, context: int) -> float:
        return self.prior.itl_s(batch, context) if self.prior is not None else UNKNOWN_ITL_S

    def prior_ttft(self, prompt_tokens: int) -> float:
        return self.prior.ttft_s(prompt_tokens) if self.prior is not None else UNKNOWN_TTFT_S

    def _wait_steps(self, prompt_tokens: int, running: float) -> float:
        """Decode steps of the running batch an unqueued request waits for before its first token:
        the step under way and its own (`STEP_WAIT_STEPS`), and one more for each further piece
        of a prompt the engine cuts at its token budget (vLLM)."""
        pieces = self.prior.prompt_steps(prompt_tokens, math.ceil(running)) if self.prior is not None else 1
        return STEP_WAIT_STEPS + max(0, pieces - 1)

    # ---- forecasts (medians) and their spread -----------------------------------------------
    def decode_s(self, batch: float, context: int) -> float:
        """One decode step at `batch` sequences (fractional: a time-average) and mean context."""
        n = max(1.0, batch)
        m = self.mean
        return math.exp(m[0] + m[2] * math.log(n)) * _interp(self.prior_itl, n, context)

    def prefill_s(self, prompt_tokens: int) -> float:
        """An idle engine's time to the first token of a `prompt_tokens` prompt."""
        return math.exp(self.mean[1]) * self.prior_ttft(prompt_tokens)

    def ttft_s(self, prompt_tokens: int, running: float, context: int) -> float:
        """Time to the first token of a request that gets a slot at once beside `running` others."""
        t = self.prefill_s(prompt_tokens)
        if running >= 1:
            t += self._wait_steps(prompt_tokens, running) * self.decode_s(running, context)
        return t

    def itl_s(self, batch: float, context: int, prefill_rate: float) -> float:
        """Seconds per token at `batch` while prefills land at `prefill_rate` (seconds of prior
        prefill work per second): the decode steps run in the time the prefills leave."""
        share = min(MAX_PREFILL_SHARE, math.exp(self.mean[1]) * prefill_rate)
        return self.decode_s(batch, context) / (1.0 - share)

    def stream_itl_s(
        self, batch: float, context: int, prefill_rate: float, now: float | None = None
    ) -> float:
        """What a stream sent now is expected to average over its life: `itl_s` corrected by how
        far streams lately landed from it."""
        return self.itl_s(batch, context, prefill_rate) * math.exp(self.life.bias(now))

    def sigma(self, batch: float, now: float | None = None) -> tuple[float, float]:
        """Log-sd of the decode step at `batch` and of the prefill: how far the medians may be off."""
        cov = self._drifted(now)
        ln_n = math.log(max(1.0, batch))
        dec = cov[0][0] + 2 * ln_n * cov[0][2] + ln_n * ln_n * cov[2][2]
        return math.sqrt(max(0.0, dec)), math.sqrt(max(0.0, cov[1][1]))

    def speed(self) -> tuple[float, float]:
        """(decode, prefill) speed relative to the prior: 2.0 = twice as fast as predicted."""
        return math.exp(-self.mean[0]), math.exp(-self.mean[1])

    # ---- learning ---------------------------------------------------------------------------
    def observe_itl(
        self, itl_s: float, tokens: int, batch: float, context: int, prefill_per_token: float, now: float
    ) -> None:
        """`tokens` tokens came `itl_s` apart on average while the batch averaged `batch` and
        `prefill_per_token` seconds of prior prefill work (others' prompts) landed per token."""
        terms = [(self._prior_decode(batch, context), _decode_features(batch))]
        if prefill_per_token > 0:
            terms.append((prefill_per_token, _PREFILL_FEATURES))
        self._update(itl_s, terms, ITL_NOISE + ITL_NOISE_PER_TOKEN / max(1, tokens), now)

    def observe_ttft(
        self, ttft_s: float, prompt_tokens: int, running: float, context: int, now: float
    ) -> None:
        """An unqueued request's first token came `ttft_s` after it was sent, beside `running` others."""
        terms = [(self.prior_ttft(prompt_tokens), _PREFILL_FEATURES)]
        if running >= 1:
            steps = self._wait_steps(prompt_tokens, running)
            terms.append((steps * self._prior_decode(running, context), _decode_features(running)))
        self._update(ttft_s, terms, TTFT_NOISE, now)

    def observe_e2e(
        self,
        elapsed_s: float,
        prompt_tokens: int,
        running: float,
        tokens: int,
        batch: float,
        context: int,
        prefill_per_token: float,
        now: float,
    ) -> None:
        """A non-streamed answer of `tokens` tokens took `elapsed_s` (no first-token time seen)."""
        terms = [(self.prior_ttft(prompt_tokens), _PREFILL_FEATURES)]
        if running >= 1:
            wait = self._wait_steps(prompt_tokens, running)
            terms.append((wait * self._prior_decode(running, context), _decode_features(running)))
        steps = max(0, tokens - 1)
        if steps:
            terms.append((steps * self._prior_decode(batch, context), _decode_features(batch)))
            if prefill_per_token > 0:
                terms.append((steps * prefill_per_token, _PREFILL_FEATURES))
        self._update(elapsed_s, terms, E2E_NOISE, now)

    def _prior_decode(self, batch: float, context: int) -> float:
        return _interp(self.prior_itl, max(1.0, batch), context)

    def _drifted(self, now: float | None) -> list[list[float]]:
        """The covariance with the drift since the last update, capped at the prior's spread."""
        cov = self.cov
        if now is None or self.updated is None or now <= self.updated:
            return cov
        dt = now - self.updated
        cov = [cov[0][:], cov[1][:], cov[2][:]]
        pv = self.prior_var
        for i, q in ((0, DRIFT_PER_S), (1, DRIFT_PER_S), (2, SHAPE_DRIFT_PER_S)):
            v = cov[i][i] + q * dt
            if v > pv[i]:  # never less certain than the prior was: shrink its row and column
                k = math.sqrt(pv[i] / v)
                for j in range(3):
                    cov[i][j] *= k
                    cov[j][i] *= k
                cov[i][i] = pv[i]
            else:
                cov[i][i] = v
        return cov

    def _update(self, observed: float, terms: list[tuple[float, Vec]], noise: float, now: float) -> None:
        """One extended-Kalman step: `observed` seconds against the model sum of `terms` (prior
        seconds and the features that scale them), in log space."""
        if observed <= 0 or not math.isfinite(observed):
            return
        cov = self.cov = self._drifted(now)
        self.updated = now
        m0, m1, m2 = self.mean
        total = j0 = j1 = j2 = 0.0
        for w, (f0, f1, f2) in terms:
            part = w * math.exp(m0 * f0 + m1 * f1 + m2 * f2)
            total += part
            j0 += part * f0
            j1 += part * f1
            j2 += part * f2
        if total <= 0:
            return
        j0, j1, j2 = j0 / total, j1 / total, j2 / total
        r0, r1, r2 = cov
        p0 = r0[0] * j0 + r0[1] * j1 + r0[2] * j2
        p1 = r1[0] * j0 + r1[1] * j1 + r1[2] * j2
        p2 = r2[0] * j0 + r2[1] * j1 + r2[2] * j2
        innovation = math.log(observed / total)
        s = j0 * p0 + j1 * p1 + j2 * p2 + noise
        if innovation * innovation > MAX_INNOVATION_SD**2 * s:  # an outlier moves it 3 sd at most
            s = innovation * innovation / MAX_INNOVATION_SD**2
        k0, k1, k2 = p0 / s, p1 / s, p2 / s
        self.mean = [m0 + k0 * innovation, m1 + k1 * innovation, m2 + k2 * innovation]
        self.cov = [
            [r0[0] - k0 * p0, r0[1] - k0 * p1, r0[2] - k0 * p2],
            [r1[0] - k1 * p0, r1[1] - k1 * p1, r1[2] - k1 * p2],
            [r2[0] - k2 * p0, r2[1] - k2 * p1, r2[2] - k2 * p2],
        ]
        self.observations += 1


_PREFILL_FEATURES: Vec = (0.0, 1.0, 0.0)


def _decode_features(batch: float) -> Vec:
    return (1.0, 0.0, math.log(max(1.0, batch)))


def _interp(prior_itl: Callable[[int, int], float], n: float, context: int) -> float:
    """The prior's decode step at a fractional batch (linear between the integers around it)."""
    lo = int(n)
    t = prior_itl(lo, context)
    if n > lo:
        t += (n - lo) * (prior_itl(lo + 1, context) - t)
    return t
