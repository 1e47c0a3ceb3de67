"""The router's decision for one request, for logs and the console: the candidates, what was
forecast for each and how uncertain that was, and why the winner won.

A policy returns its ranking as a `Ranked` list that keeps what the decision was made of (the
forecasts it computed anyway); the typed `RouteTrace` is built from that only when someone asks
(`Ranked.trace()`), so a request whose trace nobody reads pays for a reference, not for the
trace. `RouteTrace.to_dict()` is plain JSON (orjson/json dump it as is); `summary()` is one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
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
    "wait-bound",  # the better-ranked backends would start it too late (`shed_after_s`): the next one
    "shed",  # no backend would start it in time, or (with an SLO) without harm: refused (503)
    "gpu-headroom",  # the policy's pick has no GPU headroom (`routing.headroom`): the next one instead
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
    # When GPU headroom moved the policy's pick behind: which backend, why, the policy's own reason
    # and detail, and what the move costs this request (forecast seconds, or requests outstanding)
    headroom: dict[str, Any] | None = None

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
        if self.headroom is not None:
            out["headroom"] = self.headroom
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

    __slots__ = ("_explain", "_trace", "displaced", "reason", "shed_s")

    def __init__(
        self,
        ranked: list[BackendState],
        reason: Reason,
        explain: Callable[[Ranked], RouteTrace] | None = None,
    ) -> None:
        super().__init__(ranked)
        self.reason = reason
        self.shed_s: float | None = None  # refuse the request: retry after this many seconds
        # the policy's own order and its pick's GPU pressure, when GPU headroom reordered it
        self.displaced: tuple[list[BackendState], str] | None = None
        self._explain = explain
        self._trace: RouteTrace | None = None

    def demoted(self, policy_order: list[BackendState], pressure: str) -> None:
        """GPU headroom reordered this ranking (in place) from `policy_order`, moving the policy's
        pick, under `pressure`, behind others."""
        self.displaced = (policy_order, pressure)

    def trace(self) -> RouteTrace | None:
        if self._trace is None and self._explain is not None:
            if self.displaced is None:
                self._trace = self._explain(self)
            else:  # the policy's decision as it made it, then the move
                order, pressure = self.displaced
                trace = self._explain(Ranked(order, self.reason))
                self._trace = _moved(trace, [b.name for b in self], pressure)
            self._explain = None
        return self._trace


def _moved(trace: RouteTrace, order: list[str], pressure: str) -> RouteTrace:
    """`trace` of the policy's own ranking, after GPU headroom reordered it to `order` (names),
    moving its pick behind: the reason says so, and by how much the new winner is forecast to be
    slower (or busier) than the policy's pick."""
    views = {c.backend: c for c in trace.candidates}
    pick, winner = trace.winner, order[0]
    mine, won = views.get(pick), views.get(winner)
    note: dict[str, Any] = {
        "moved": pick,
        "pressure": pressure,
        "policy_reason": trace.reason,
        "policy_detail": trace.detail,
    }
    cost = ""
    if mine is not None and won is not None:
        if mine.total_s is not None and won.total_s is not None:
            note["cost_s"] = round(won.total_s - mine.total_s, 4)
            pct = (won.total_s / mine.total_s - 1) * 100 if mine.total_s > 0 else 0.0
            cost = f", forecast {won.total_s:.3f}s vs {mine.total_s:.3f}s there ({pct:+.0f}%)"
        else:
            note["outstanding_more"] = won.outstanding - mine.outstanding
            cost = f", {won.outstanding:g} requests outstanding vs {mine.outstanding:g} there"
    detail = f"GPU headroom moved {pick} ({trace.reason}) behind: {pressure}; {winner} instead{cost}"
    candidates = tuple(views[name] for name in order if name in views)
    return replace(
        trace, winner=winner, reason="gpu-headroom", detail=detail, candidates=candidates, headroom=note
    )


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
