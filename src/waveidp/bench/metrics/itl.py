"""Inter-token latency of one request: (E2E - TTFT) / (output_tokens - 1).

Not defined for a request with fewer than two output tokens (there is no gap to measure).
"""

from __future__ import annotations

from waveidp.bench.metrics.e2e import e2e_s
from waveidp.bench.metrics.metric import RequestMetric
from waveidp.bench.metrics.ttft import ttft_s
from waveidp.bench.records import RequestRecord


def itl_s(r: RequestRecord) -> float | None:
    e2e, ttft = e2e_s(r), ttft_s(r)
    if e2e is None or ttft is None or r.output_tokens < 2:
        return None
    return (e2e - ttft) / (r.output_tokens - 1)


ITL = RequestMetric("itl_ms", "ms", "ITL", "inter-token latency", value=itl_s, scale=1000)
