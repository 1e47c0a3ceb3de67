"""Round-robin: each backend in turn, blind to speed and load (the baseline)."""

from __future__ import annotations

from waveidp.gateway.backends import BackendState
from waveidp.gateway.request_info import RequestInfo


class RoundRobin:
    name = "round-robin"
    counts_load_time = False  # the gateway puts loaded engines first

    def __init__(self) -> None:
        self._next = 0

    def rank(self, candidates: list[BackendState], info: RequestInfo, now: float) -> list[BackendState]:
        if len(candidates) < 2:
            return candidates
        start = self._next % len(candidates)
        self._next += 1
        return candidates[start:] + candidates[:start]
