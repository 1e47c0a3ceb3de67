"""Client lag: actual send - scheduled send. Large values mean the load generator itself was late."""

from __future__ import annotations

from waveidp.bench.metrics.metric import RequestMetric
from waveidp.bench.records import RequestRecord


def client_lag_s(r: RequestRecord) -> float | None:
    if r.sent is None:
        return None
    return r.sent - r.scheduled


CLIENT_LAG = RequestMetric(
    "client_lag_ms", "ms", "client lag", "actual send - scheduled send", value=client_lag_s, scale=1000
)
