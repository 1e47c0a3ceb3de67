"""Routing policies: each ranks the routable backends for one request, best first.

The gateway sends the request to the first and retries down the list. Policies are chosen per
model in the fleet file (`routing.models.<name>.policy`), default `predicted-latency`. A ranking
is a `Ranked` list that can explain itself (`Ranked.trace()`, a `RouteTrace`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from waveidp.gateway.routing.trace import CandidateTrace, Ranked, RouteTrace

if TYPE_CHECKING:  # backends imports routing.learning: keep this package importable from there
    from waveidp.fleet.models import Slo
    from waveidp.gateway.backends import BackendState
    from waveidp.gateway.request_info import RequestInfo


class Policy(Protocol):
    name: str
    counts_load_time: bool  # ranks a backend loaded on demand by its load time (else: loaded first)

    def rank(self, candidates: list[BackendState], info: RequestInfo, now: float) -> Ranked: ...


def make_policy(
    name: str, *, affinity: bool = True, slo: Slo | None = None, shed_after_s: float | None = None
) -> Policy:
    """The policy called `name`; `slo` (the model's `routing.models.<m>.slo`) and `shed_after_s`
    (the longest forecast wait for a first token worth queueing for) steer predicted-latency only:
    the other two are baselines that know nothing of speed."""
    from waveidp.gateway.routing.least_outstanding import LeastOutstanding
    from waveidp.gateway.routing.predicted_latency import PredictedLatency
    from waveidp.gateway.routing.round_robin import RoundRobin

    if name == "round-robin":
        return RoundRobin()
    if name == "least-outstanding":
        return LeastOutstanding()
    if name == "predicted-latency":
        return PredictedLatency(affinity=affinity, slo=slo, shed_after_s=shed_after_s)
    from waveidp.errors import NotFoundError

    raise NotFoundError("routing policy", name, ["round-robin", "least-outstanding", "predicted-latency"])


__all__ = ["CandidateTrace", "Policy", "Ranked", "RouteTrace", "make_policy"]
