"""The gateway's live view of one backend: where it is, what it serves, how loaded and healthy it is."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from waveidp.engines import EngineAdapter, EngineLoad
from waveidp.gateway.breaker import CircuitBreaker
from waveidp.gateway.prediction import Prediction
from waveidp.gateway.request_info import RequestInfo
from waveidp.gateway.routing.learning import BackendLearning, RequestMark

DEFAULT_OUTPUT_TOKENS = 256  # the work charged for a request that sets no max_tokens


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted mean; `count` says how much it has seen (blending uses it)."""

    alpha: float = 0.2
    value: float | None = None
    count: int = 0

    def observe(self, x: float) -> None:
        self.value = x if self.value is None else self.value + self.alpha * (x - self.value)
        self.count += 1


@dataclass(slots=True)
class Work:
    """One request the gateway has in flight on a backend: what it asked for and how far it got."""

    prompt_tokens: int
    output_tokens: int  # its max_tokens (the most it can cost), 0 for embeddings
    started: float  # monotonic, when it was sent
    queued: bool  # it found every slot taken when it was sent
    # Held so that its id, the key in `BackendState.active`, cannot be reused while it is there.
    info: RequestInfo = field(repr=False)
    first_token: float | None = None  # monotonic, when its first token came back
    mark: RequestMark | None = field(default=None, repr=False)  # the router's learning (routing.learning)


@dataclass(eq=False)
class BackendState:
    name: str
    root: str  # base URL without a trailing `/v1`
    adapter: EngineAdapter
    models: set[str] = field(default_factory=set)
    discover_models: bool = False
    api_key: str | None = field(default=None, repr=False)  # a secret: never in reprs or logs
    max_concurrency: int | None = None
    predictions: dict[str, Prediction] = field(default_factory=dict)  # by model name, from sizing
    inflight: int = 0
    # The requests in flight, in the order they were sent (keyed by their RequestInfo's id).
    active: dict[int, Work] = field(default_factory=dict, repr=False)
    _load: EngineLoad = field(default_factory=EngineLoad, repr=False)
    inflight_at_scrape: int = 0  # our own in-flight count when `load` was last read
    probe_ok: bool = True
    down_reason: str | None = None
    down_since: float | None = None
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    ttft: Ewma = field(default_factory=Ewma)  # seconds to the first token
    itl: Ewma = field(default_factory=Ewma)  # seconds per output token after the first
    # The router's learned load curves and the bookkeeping behind them (routing.learning): fed by
    # the hooks marked "learning" below, read by the predicted-latency forecast.
    learning: BackendLearning = field(default_factory=BackendLearning, repr=False)

    @property
    def load(self) -> EngineLoad:
        """The engine's own view of its load (scraped `/metrics`)."""
        return self._load

    @load.setter
    def load(self, value: EngineLoad) -> None:
        self._load = value
        self.inflight_at_scrape = self.inflight
        self.learning.occupancy(self.occupied(), time.monotonic())  # learning

    @property
    def slots(self) -> int | None:
        """How many requests it runs at once (`max_concurrency`, else what sizing says its KV holds)."""
        if self.max_concurrency:
            return self.max_concurrency
        for p in self.predictions.values():
            if p.slots:
                return p.slots
        return None

    def foreign(self) -> int:
        """Requests the engine reported that this gateway did not send (another gateway's, a
        direct client's): its count minus ours at the moment it was read."""
        return max(0, int(self._load.queued) - self.inflight_at_scrape)

    def occupied(self) -> int:
        """Sequences the engine runs now: ours and others' in flight, at most its slot count."""
        n = len(self.active) + self.foreign()
        slots = self.slots
        return min(n, slots) if slots else n

    def begin(self, info: RequestInfo) -> None:
        """A request goes out to this backend (one attempt; `end` follows whatever happens)."""
        slots = self.slots
        out = 0 if info.endpoint == "embeddings" else (info.max_tokens or DEFAULT_OUTPUT_TOKENS)
        queued = slots is not None and len(self.active) + self.foreign() >= slots
        now = time.monotonic()
        work = Work(info.prompt_tokens_est, out, now, queued, info)
        # learning: the load it found, then the load it makes
        pred = self.predictions.get(info.model)
        work.mark = self.learning.sent(
            info.model, pred, info.prompt_tokens_est, out, self.occupied(), queued, slots, now, id(info)
        )
        self.active[id(info)] = work
        self.inflight += 1
        self.learning.occupancy(self.occupied(), now)

    def first_token(self, info: RequestInfo | None, ttft_s: float) -> None:
        """The request's first token arrived `ttft_s` after it was sent. Only requests that started
        at once teach the TTFT average: a queued one's wait is the router's queue estimate."""
        work = self.active.get(id(info))
        if work is None:
            self.ttft.observe(ttft_s)
            return
        work.first_token = work.started + ttft_s
        if not work.queued:
            self.ttft.observe(ttft_s)
        if work.mark is not None:  # learning
            self.learning.first_token(work.mark, ttft_s, work.first_token)

    def progress(self, info: RequestInfo | None, tokens: int, now: float) -> None:
        """The request has streamed `tokens` tokens by `now` (monotonic): the router learns its ITL."""
        work = self.active.get(id(info))
        if work is not None and work.mark is not None:  # learning
            self.learning.progress(work.mark, tokens, now)

    def answered(self, work: Work | None, elapsed_s: float, tokens: int) -> None:
        """A non-streamed answer of `tokens` tokens took `elapsed_s` (`work` is what `end` returned)."""
        if work is not None and work.mark is not None:  # learning
            self.learning.answered(work.mark, elapsed_s, tokens, time.monotonic())

    def end(self, info: RequestInfo | None) -> Work | None:
        work = self.active.pop(id(info), None)
        self.inflight -= 1
        self.learning.occupancy(self.occupied(), time.monotonic())  # learning
        if work is not None and work.mark is not None:
            self.learning.ended(work.mark)
        return work

    @property
    def engine(self) -> str:
        return self.adapter.kind

    def routable(self, now: float) -> bool:
        return self.probe_ok and self.breaker.allows(now)

    def mark_down(self, reason: str) -> None:
        if self.probe_ok or self.down_reason != reason:
            self.down_since = time.time()
        self.probe_ok = False
        self.down_reason = reason

    def mark_up(self) -> None:
        self.probe_ok = True
        self.down_reason = None
        self.down_since = None

    def status_line(self, now: float) -> str:
        if not self.probe_ok:
            since = time.strftime("%H:%M:%S", time.localtime(self.down_since)) if self.down_since else "?"
            return f"{self.name} ({self.root}): down since {since}: {self.down_reason}"
        if not self.breaker.allows(now):
            return f"{self.name} ({self.root}): circuit open after {self.breaker.failures} failures"
        return f"{self.name} ({self.root}): healthy"

    def queue_depth(self) -> float:
        """Requests ahead of a new one: the engine's own count or ours, whichever is larger."""
        return max(float(self.inflight), self.load.queued)
