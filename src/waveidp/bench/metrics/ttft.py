"""Time to first token: scheduled send -> first chunk with non-empty content."""

from __future__ import annotations

from waveidp.bench.metrics.metric import RequestMetric
from waveidp.bench.records import RequestRecord


def ttft_s(r: RequestRecord) -> float | None:
    if not r.ok:
        return None
    return r.content_times[0] - r.scheduled


TTFT = RequestMetric("ttft_ms", "ms", "TTFT", "time to first token", value=ttft_s, scale=1000)
