"""The gateway's live view of one backend: where it is, what it serves, how loaded and healthy it is."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from waveidp.engines import EngineAdapter, EngineLoad
from waveidp.gateway.breaker import CircuitBreaker
from waveidp.gateway.prediction import Prediction
from waveidp.gateway.request_info import STREAMING, RequestInfo
from waveidp.gateway.residency import Residency
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


@dataclass(slots=True, eq=False)
class Work:
    """One attempt in flight on a backend: what it asked for and how far it got. `BackendState.begin`
    hands it out as the attempt's token; `first_token` and `end` take it back."""

    prompt_tokens: int
    output_tokens: int  # its max_tokens (the most it can cost), 0 for embeddings
    started: float  # monotonic, when it was sent
    queued: bool  # it found every slot taken when it was sent
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
    # Whether its model list has been read once (a `discover_models` backend not yet asked may
    # serve any model: requests for unknown ones wait with 503 rather than 404).
    discovered: bool = False
    # The engine's own entry of each model in its `/v1/models` (max_model_len, owned_by, ...).
    model_entries: dict[str, dict[str, object]] = field(default_factory=dict, repr=False)
    # Routes it answered with 404/405 although its kind may have them (an older build): the
    # gateway translates those to chat completions from then on.
    lacks: set[str] = field(default_factory=set)
    max_concurrency: int | None = None
    predictions: dict[str, Prediction] = field(default_factory=dict)  # by model name, from sizing
    inflight: int = 0
    # The attempts in flight, in the order they were sent, keyed by the id of their `Work` (which
    # the entry holds, so the id cannot be reused while it is there).
    active: dict[int, Work] = field(default_factory=dict, repr=False)
    _load: EngineLoad = field(default_factory=EngineLoad, repr=False)
    inflight_at_scrape: int = 0  # our own in-flight count when `load` was last read
    probe_ok: bool = True
    down_reason: str | None = None
    down_since: float | None = None
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    ttft: Ewma = field(default_factory=Ewma)  # seconds to the first token
    itl: Ewma = field(default_factory=Ewma)  # seconds per output token after the first
    node: str | None = None  # the fleet node it runs on
    gpus: tuple[int, ...] | None = None  # its GPUs' indices on that node (None: not known)
    # why its GPUs have no headroom (routing/headroom.py), from its node's last telemetry read
    gpu_pressure: str | None = None
    residency: Residency | None = None  # an engine loaded on demand (None: always there)
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
        if self.learning.armed:  # learning
            self.learning.occupancy(self.occupied(), time.monotonic())

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

    def begin(self, info: RequestInfo) -> Work:
        """An attempt of `info` goes out to this backend: its token, which `end` takes back whatever
        happens (at once for a complete answer, when a stream ends for a stream)."""
        slots = self.slots
        out = (info.max_tokens or DEFAULT_OUTPUT_TOKENS) if info.endpoint in STREAMING else 0
        queued = slots is not None and len(self.active) + self.foreign() >= slots
        now = time.monotonic()
        work = Work(info.prompt_tokens_est, out, now, queued)
        learning = self.learning
        if learning.armed:  # learning: the load it found (and the forecast made for `info`)
            work.mark = learning.sent(
                info.model,
                self.predictions.get(info.model),
                info.prompt_tokens_est,
                out,
                self.occupied(),
                queued,
                slots,
                now,
                id(info),
            )
        self.active[id(work)] = work
        self.inflight += 1
        if learning.armed:  # and the load it makes
            learning.occupancy(self.occupied(), now)
        return work

    def first_token(self, work: Work, ttft_s: float) -> None:
        """The attempt's first token arrived `ttft_s` after it was sent. Only attempts that started
        at once teach the TTFT average: a queued one's wait is the router's queue estimate."""
        work.first_token = work.started + ttft_s
        if not work.queued:
            self.ttft.observe(ttft_s)
        if work.mark is not None:  # learning
            self.learning.first_token(work.mark, ttft_s, work.first_token)

    def progress(self, work: Work, tokens: int, now: float) -> None:
        """The attempt has streamed `tokens` tokens by `now` (monotonic): the router learns its ITL."""
        if work.mark is not None:  # learning
            self.learning.progress(work.mark, tokens, now)

    def answered(self, work: Work, elapsed_s: float, tokens: int) -> None:
        """A complete (non-streamed) answer of `tokens` tokens took `elapsed_s`."""
        if work.mark is not None:  # learning
            self.learning.answered(work.mark, elapsed_s, tokens, time.monotonic())

    def end(self, work: Work) -> None:
        """The attempt is over (answered, failed or cancelled); a second `end` of it counts nothing."""
        if self.active.pop(id(work), None) is not None:
            self.inflight -= 1
            if self.learning.armed:  # learning
                self.learning.occupancy(self.occupied(), time.monotonic())
            if work.mark is not None:
                self.learning.ended(work.mark)

    @property
    def engine(self) -> str:
        return self.adapter.kind

    def ready_in_s(self, now: float) -> float:
        """Seconds until its engine could take a request: 0 unless it is loaded on demand and not
        loaded now (then its predicted load time, what routing adds to its forecast)."""
        return 0.0 if self.residency is None else self.residency.ready_in_s(now)

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
        """Its state for people (`/ready`, a 503's message): URLs without their credentials."""
        from waveidp.security.secrets import redact_urls

        if self.residency is not None and not self.residency.loaded:
            return redact_urls(f"{self.name} ({self.root}): {self.residency.describe(now)}")
        if not self.probe_ok:
            since = time.strftime("%H:%M:%S", time.localtime(self.down_since)) if self.down_since else "?"
            line = f"{self.name} ({self.root}): down since {since}: {self.down_reason}"
        elif not self.breaker.allows(now):
            line = f"{self.name} ({self.root}): circuit open after {self.breaker.failures} failures"
        else:
            line = f"{self.name} ({self.root}): healthy"
        return redact_urls(line)

    def queue_depth(self) -> float:
        """Requests ahead of a new one: the engine's own count or ours, whichever is larger."""
        return max(float(self.inflight), self.load.queued)
