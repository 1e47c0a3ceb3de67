"""End-to-end latency: scheduled send -> last byte of the response."""

from __future__ import annotations

from waveidp.bench.metrics.metric import RequestMetric
from waveidp.bench.records import RequestRecord


def e2e_s(r: RequestRecord) -> float | None:
    if not r.ok or r.done is None:
        return None
    return r.done - r.scheduled


E2E = RequestMetric("e2e_ms", "ms", "E2E", "end-to-end latency", value=e2e_s, scale=1000)
