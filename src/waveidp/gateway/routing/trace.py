"""The router's decision for one request, for logs and the console: the candidates, what was
forecast for each and how uncertain that was, and why the winner won.

A policy returns its ranking as a `Ranked` list that keeps what the decision was made of (the
forecasts it computed anyway); the typed `RouteTrace` is built from that only when someone asks
(`Ranked.trace()`), so a request whose trace nobody reads pays for a reference, not for the
trace. `RouteTrace.to_dict()` is plain JSON (orjson/json dump it as is); `summary()` is one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from waveidp.gateway.backends import BackendState

Reason = Literal[
    "only-backend",  # one routable backend: nothing to rank
    "in-turn",  # round-robin
    "fewest-outstanding",  # least-outstanding
    "best-forecast",  # the best SLO tier, then the least forecast total time
    "uncertain-tie",  # forecasts too uncertain to tell apart: fewest outstanding among them
    "exploration",  # an uncertain backend tried to keep its estimate honest
    "affinity",  # the session's backend, close enough to the best
]


@dataclass(frozen=True, slots=True)
class CandidateTrace:
    """One backend as the router saw it for this request (times in seconds)."""

    backend: str
    outstanding: float  # requests in flight or queued there (the engine's count or ours)
    tier: str | None = None  # meets / likely / overflow / saturated, with an SLO
    slo_chance: float | None = None  # the forecast chance that it meets the SLO there
    wait_s: float | None = None
    ttft_s: float | None = None
    itl_s: float | None = None
    total_s: float | None = None
    uncertainty: float | None = None  # log-sd of total_s: 0.3 is about +-35 %
    batch: int | None = None  # sequences it would run beside, itself included
    decode_speed: float | None = None  # learned speed relative to sizing's prior (2.0 = twice as fast)
    prefill_speed: float | None = None
    known: bool = True  # a prior or an observation is behind the forecast

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


@dataclass(frozen=True, slots=True)
class RouteTrace:
    policy: str
    model: str
    winner: str
    reason: Reason
    detail: str  # the reason in words
    candidates: tuple[CandidateTrace, ...]  # in the order they were ranked
    slo: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "policy": self.policy,
            "model": self.model,
            "winner": self.winner,
            "reason": self.reason,
            "detail": self.detail,
            "candidates": [c.to_dict() for c in self.candidates],
        }
        if self.slo is not None:
            out["slo"] = self.slo
        return out

    def summary(self) -> str:
        return f"route {self.model} -> {self.winner} ({self.reason}: {self.detail}): " + ", ".join(
            _describe(c) for c in self.candidates
        )


def _describe(c: CandidateTrace) -> str:
    if c.total_s is None:
        return f"{c.backend} outstanding {c.outstanding:g}"
    text = (
        f"{c.backend}=ttft {c.ttft_s:.3f}s itl {(c.itl_s or 0) * 1000:.1f}ms total {c.total_s:.3f}s"
        f" ±{(c.uncertainty or 0) * 100:.0f}%"
    )
    if c.tier:
        text += f" {c.tier}"
    if c.slo_chance is not None:
        text += f" p={c.slo_chance:.2f}"
    return text


class Ranked(list["BackendState"]):
    """A policy's ranking (best first) that can explain itself: `trace()` builds the `RouteTrace`
    on first call from what the policy kept, and remembers it."""

    __slots__ = ("_explain", "_trace", "reason")

    def __init__(
        self,
        ranked: list[BackendState],
        reason: Reason,
        explain: Callable[[Ranked], RouteTrace] | None = None,
    ) -> None:
        super().__init__(ranked)
        self.reason = reason
        self._explain = explain
        self._trace: RouteTrace | None = None

    def trace(self) -> RouteTrace | None:
        if self._trace is None and self._explain is not None:
            self._trace = self._explain(self)
            self._explain = None
        return self._trace


def by_outstanding(policy: str, model: str, detail: str) -> Callable[[Ranked], RouteTrace]:
    """The explainer of a policy that forecasts nothing: the candidates and their outstanding requests."""

    def explain(ranked: Ranked) -> RouteTrace:
        return RouteTrace(
            policy,
            model,
            ranked[0].name if ranked else "",
            ranked.reason,
            detail,
            tuple(CandidateTrace(b.name, b.queue_depth()) for b in ranked),
        )

    return explain
