"""Output token throughput: total output tokens of completed requests / measurement window."""

from __future__ import annotations

from collections.abc import Sequence

from waveidp.bench.metrics.request_throughput import window_s
from waveidp.bench.records import RequestRecord


def output_tokens_per_s(records: Sequence[RequestRecord]) -> float:
    span = window_s(records)
    if span is None:
        return 0.0
    return sum(r.output_tokens for r in records if r.ok and not r.warmup) / span
