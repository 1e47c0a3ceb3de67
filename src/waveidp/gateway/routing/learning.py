"""What the router learns about one backend from the requests it sends there.

Per model a `LoadCurve`; per backend the bookkeeping that turns raw times into observations of
that curve:

- the occupancy integral: how many sequences the engine was running, over time (the gateway's own
  requests in flight, plus the ones the engine reports from elsewhere, capped at the slot count),
  so a stream's ITL is paired with the batch it really ran in, not the batch when it started;
- the prefill work that landed: each request's prompt, in prior seconds, counted when its first
  token comes back; what landed inside a stream's window was interleaved with its decode steps;
- the rate of that prefill work (decayed over `PREFILL_RATE_TAU_S`), which the forecast charges to
  the ITL of a request about to be sent.

A request carries a `RequestMark` from `sent` on: the last point its ITL was measured from. A
stream reports its progress twice (after a few tokens, and at its end); each report teaches the
ITL over the tokens since the previous one, so the two are independent observations.

The gateway calls these from `BackendState` (begin, first token, progress, end, each scrape) once
the router has forecast the backend (`arm`: a backend never ranked against another learns nothing);
nothing here reads a clock or a socket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from waveidp.gateway.prediction import Prediction
from waveidp.gateway.routing.load_curve import LoadCurve

PREFILL_RATE_TAU_S = 5.0
MIN_LIFE_TOKENS = 8  # a stream shorter than this says little about its life-average ITL


@dataclass(slots=True)
class RequestMark:
    curve: LoadCurve
    prompt_tokens: int
    running: float  # sequences the engine ran beside it when it was sent
    queued: bool  # it found every slot taken
    t: float  # when it was sent; from its first token on, the point its ITL is measured from
    area: float  # the backend's occupancy integral at `t`
    prefill: float  # the backend's landed-prefill counter at `t`
    tokens: int = 0  # tokens it had produced at `t`
    # the load it was sent into (0 batch: not a stream to compare): its batch, mean context and the
    # prefill rate then, for the curve's ITL forecast at its end
    sent_batch: float = 0.0
    sent_context: int = 0
    sent_rate: float = 0.0
    first_at: float = 0.0  # when its first token came back
    ttft_forecast: float = 0.0  # what the router forecast for its TTFT, when it found a queue


@dataclass(slots=True)
class BackendLearning:
    # Off until the router first forecasts this backend (`arm`): the hooks cost ~25 us a request,
    # which a backend never ranked against another (the only one for its models) does not pay.
    armed: bool = False
    curves: dict[str, LoadCurve] = field(default_factory=dict)
    occupied: float = 0.0  # sequences running now
    _since: float | None = None
    _area: float = 0.0  # integral of `occupied` over time until `_since`
    landed: float = 0.0  # prior seconds of prefill work that has landed, in total
    _rate_acc: float = 0.0
    _rate_t: float = 0.0
    # The TTFT the router last forecast here and for which request (its id): the request that is
    # sent next picks it up if it is that one (a policy ranks and the gateway sends without a
    # pause between them).
    forecast_for: tuple[int, float] = (0, 0.0)

    def forecast_ttft(self, key: int, ttft_s: float) -> None:
        self.forecast_for = (key, ttft_s)

    def curve(self, model: str, prior: Prediction | None, now: float | None = None) -> LoadCurve:
        found = self.curves.get(model)
        if found is None:
            found = self.curves[model] = LoadCurve.start(prior, now)
        return found

    def arm(self, occupied: float, now: float) -> None:
        """Start learning: `occupied` sequences run now; requests sent from now on report."""
        self.armed = True
        self.occupancy(occupied, now)

    def occupancy(self, occupied: float, now: float) -> None:
        """The number of sequences running changed to `occupied` at `now`."""
        self._area = self.area(now)
        self._since = now
        self.occupied = occupied

    def area(self, now: float) -> float:
        if self._since is None:
            return self._area
        return self._area + self.occupied * max(0.0, now - self._since)

    def prefill_rate(self, now: float) -> float:
        """Prior seconds of prefill work landing per second, lately."""
        return (
            self._rate_acc * math.exp(-max(0.0, now - self._rate_t) / PREFILL_RATE_TAU_S) / PREFILL_RATE_TAU_S
        )

    def sent(
        self,
        model: str,
        prior: Prediction | None,
        prompt_tokens: int,
        output_tokens: int,
        running: float,
        queued: bool,
        slots: int | None,
        now: float,
        key: int = 0,
    ) -> RequestMark:
        """A request of `prompt_tokens` asking for `output_tokens` goes out beside `running` others
        (`key`: its id, for the forecast the router made for it)."""
        curve = self.curve(model, prior, now)
        mark = RequestMark(curve, prompt_tokens, running, queued, now, self.area(now), self.landed)
        if queued and key and self.forecast_for[0] == key:
            mark.ttft_forecast = self.forecast_for[1]
        if output_tokens > 1:
            mark.sent_batch = min(running + 1, slots) if slots else running + 1
            mark.sent_context = prompt_tokens + output_tokens // 2
            mark.sent_rate = self.prefill_rate(now)
        return mark

    def first_token(self, mark: RequestMark, ttft_s: float, now: float) -> None:
        """Its first token came back at `now`, `ttft_s` after it was sent: its prefill has landed."""
        curve = mark.curve
        if not mark.queued:  # a queued one's TTFT is mostly its wait, which the queue model forecasts
            curve.observe_ttft(ttft_s, mark.prompt_tokens, mark.running, mark.prompt_tokens, now)
        elif mark.ttft_forecast > 0:  # and teaches how far that forecast lands
            curve.queue.observe(math.log(ttft_s / mark.ttft_forecast), now)
        self._land(curve.prior_ttft(mark.prompt_tokens), now)
        # its own prefill is not interleaved with its own decode steps
        mark.t, mark.area, mark.prefill, mark.tokens = now, self.area(now), self.landed, 1
        mark.first_at = now

    def progress(self, mark: RequestMark, tokens: int, now: float) -> None:
        """It has produced `tokens` tokens by `now`: teach the ITL since the last report."""
        k = tokens - mark.tokens
        dt = now - mark.t
        if mark.tokens < 1 or k < 1 or dt <= 0:
            return
        area, landed = self.area(now), self.landed
        batch = max(1.0, (area - mark.area) / dt)
        context = mark.prompt_tokens + (mark.tokens + tokens) // 2
        mark.curve.observe_itl(dt / k, k, batch, context, max(0.0, landed - mark.prefill) / k, now)
        mark.t, mark.area, mark.prefill, mark.tokens = now, area, landed, tokens

    def ended(self, mark: RequestMark) -> None:
        """It is over: how its life-average ITL compares with what the curve, as learned by now,
        forecasts for the load it was sent into (the curve's own learning lag is not counted)."""
        if mark.sent_batch and mark.tokens >= MIN_LIFE_TOKENS and mark.t > mark.first_at:
            realized = (mark.t - mark.first_at) / (mark.tokens - 1)
            forecast = mark.curve.itl_s(mark.sent_batch, mark.sent_context, mark.sent_rate)
            mark.curve.life.observe(math.log(realized / forecast), mark.t)

    def answered(self, mark: RequestMark, elapsed_s: float, tokens: int, now: float) -> None:
        """A non-streamed answer of `tokens` tokens came back at `now`, `elapsed_s` after it was sent
        (its first token was never seen): teach its prefill and decode together."""
        if mark.queued or tokens < 1 or mark.tokens:
            return
        dt = now - mark.t
        batch = max(1.0, (self.area(now) - mark.area) / dt) if dt > 0 else max(1.0, mark.running + 1)
        others = max(0.0, self.landed - mark.prefill) / tokens
        context = mark.prompt_tokens + tokens // 2
        mark.curve.observe_e2e(
            elapsed_s, mark.prompt_tokens, mark.running, tokens, batch, context, others, now
        )
        self._land(mark.curve.prior_ttft(mark.prompt_tokens), now)

    def _land(self, work: float, now: float) -> None:
        self.landed += work
        self._rate_acc = self._rate_acc * math.exp(-max(0.0, now - self._rate_t) / PREFILL_RATE_TAU_S) + work
        self._rate_t = now
