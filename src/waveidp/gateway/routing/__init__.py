"""Routing policies: each ranks the routable backends for one request, best first.

The gateway sends the request to the first and retries down the list. Policies are chosen per
model in the fleet file (`routing.models.<name>.policy`), default `predicted-latency`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from waveidp.gateway.backends import BackendState
from waveidp.gateway.request_info import RequestInfo

if TYPE_CHECKING:
    from waveidp.fleet.models import Slo


class Policy(Protocol):
    name: str
    counts_load_time: bool  # ranks a backend loaded on demand by its load time (else: loaded first)

    def rank(self, candidates: list[BackendState], info: RequestInfo, now: float) -> list[BackendState]: ...


def make_policy(name: str, *, affinity: bool = True, slo: Slo | None = None) -> Policy:
    """The policy called `name`; `slo` (the model's `routing.models.<m>.slo`) steers predicted-latency
    only: the other two are baselines that know nothing of speed."""
    from waveidp.gateway.routing.least_outstanding import LeastOutstanding
    from waveidp.gateway.routing.predicted_latency import PredictedLatency
    from waveidp.gateway.routing.round_robin import RoundRobin

    if name == "round-robin":
        return RoundRobin()
    if name == "least-outstanding":
        return LeastOutstanding()
    if name == "predicted-latency":
        return PredictedLatency(affinity=affinity, slo=slo)
    from waveidp.errors import NotFoundError

    raise NotFoundError("routing policy", name, ["round-robin", "least-outstanding", "predicted-latency"])


__all__ = ["Policy", "make_policy"]
