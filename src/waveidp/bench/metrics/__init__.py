"""One module per metric, each defined once (see docs/metrics.md for the exact definitions).

Per-request metrics take a `RequestRecord` and return seconds or None (not defined for it);
run-level metrics take the list of a load point's records.
"""

from waveidp.bench.metrics.client_lag import client_lag_s
from waveidp.bench.metrics.distribution import Distribution, distribution
from waveidp.bench.metrics.e2e import e2e_s
from waveidp.bench.metrics.goodput import Slo, goodput_per_s, meets_slo
from waveidp.bench.metrics.itl import itl_s
from waveidp.bench.metrics.output_throughput import output_tokens_per_s
from waveidp.bench.metrics.request_throughput import requests_per_s, window_s
from waveidp.bench.metrics.ttft import ttft_s

__all__ = [
    "Distribution",
    "Slo",
    "client_lag_s",
    "distribution",
    "e2e_s",
    "goodput_per_s",
    "itl_s",
    "meets_slo",
    "output_tokens_per_s",
    "requests_per_s",
    "ttft_s",
    "window_s",
]
