"""One module per metric, each defined once (see docs/metrics.md for the exact definitions).

Every module declares its metric (`Metric`: results.json key, unit, labels) next to its math.
Per-request metrics take a `RequestRecord` and return seconds (or tokens) or None (not defined for
it); run-level metrics take the list of a load point's records.
"""

from waveidp.bench.metrics.client_lag import CLIENT_LAG, client_lag_s
from waveidp.bench.metrics.distribution import Distribution, distribution
from waveidp.bench.metrics.e2e import E2E, e2e_s
from waveidp.bench.metrics.goodput import GOODPUT, SLO_METRICS, Slo, goodput_per_s, meets_slo
from waveidp.bench.metrics.itl import ITL, itl_s
from waveidp.bench.metrics.loop_delay import LOOP_DELAY
from waveidp.bench.metrics.metric import Metric, RequestMetric
from waveidp.bench.metrics.output_throughput import OUTPUT_THROUGHPUT, output_tokens_per_s
from waveidp.bench.metrics.request_throughput import REQUEST_THROUGHPUT, requests_per_s, window_s
from waveidp.bench.metrics.tokens import INPUT_TOKENS, OUTPUT_TOKENS
from waveidp.bench.metrics.ttft import TTFT, ttft_s

__all__ = [
    "CLIENT_LAG",
    "E2E",
    "GOODPUT",
    "INPUT_TOKENS",
    "ITL",
    "LOOP_DELAY",
    "OUTPUT_THROUGHPUT",
    "OUTPUT_TOKENS",
    "REQUEST_THROUGHPUT",
    "SLO_METRICS",
    "TTFT",
    "Distribution",
    "Metric",
    "RequestMetric",
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
