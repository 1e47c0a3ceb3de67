"""Least-outstanding: the backend with the fewest requests in flight or queued (ties in turn)."""

from __future__ import annotations

from waveidp.gateway.backends import BackendState
from waveidp.gateway.request_info import RequestInfo


class LeastOutstanding:
    name = "least-outstanding"
    counts_load_time = False  # the gateway puts loaded engines first

    def __init__(self) -> None:
        self._turn = 0

    def rank(self, candidates: list[BackendState], info: RequestInfo, now: float) -> list[BackendState]:
        if len(candidates) < 2:
            return candidates
        self._turn += 1
        n = len(candidates)
        order = {id(b): (i - self._turn) % n for i, b in enumerate(candidates)}
        return sorted(candidates, key=lambda b: (b.queue_depth(), order[id(b)]))
