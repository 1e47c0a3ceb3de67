"""The gateway's live view of one backend: where it is, what it serves, how loaded and healthy it is."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from waveidp.engines import EngineAdapter, EngineLoad
from waveidp.gateway.breaker import CircuitBreaker
from waveidp.gateway.prediction import Prediction


@dataclass(slots=True)
class Ewma:
    """Exponentially weighted mean; `count` says how much it has seen (blending uses it)."""

    alpha: float = 0.2
    value: float | None = None
    count: int = 0

    def observe(self, x: float) -> None:
        self.value = x if self.value is None else self.value + self.alpha * (x - self.value)
        self.count += 1


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
    load: EngineLoad = field(default_factory=EngineLoad)
    probe_ok: bool = True
    down_reason: str | None = None
    down_since: float | None = None
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    ttft: Ewma = field(default_factory=Ewma)  # seconds to the first token
    itl: Ewma = field(default_factory=Ewma)  # seconds per output token after the first

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
