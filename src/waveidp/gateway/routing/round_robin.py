"""Round-robin: each backend in turn, blind to speed and load (the baseline)."""

from __future__ import annotations

from waveidp.gateway.backends import BackendState
from waveidp.gateway.request_info import RequestInfo
from waveidp.gateway.routing.trace import Ranked, by_outstanding


class RoundRobin:
    name = "round-robin"
    counts_load_time = False  # the gateway puts loaded engines first

    def __init__(self) -> None:
        self._next = 0

    def rank(self, candidates: list[BackendState], info: RequestInfo, now: float) -> Ranked:
        if len(candidates) < 2:
            return Ranked(
                candidates, "only-backend", by_outstanding(self.name, info.model, "one routable backend")
            )
        start = self._next % len(candidates)
        self._next += 1
        return Ranked(
            candidates[start:] + candidates[:start],
            "in-turn",
            by_outstanding(self.name, info.model, "its turn"),
        )
