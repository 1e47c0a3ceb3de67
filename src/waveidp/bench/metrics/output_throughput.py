"""Output token throughput: output tokens that arrived inside the measurement window / the window."""

from __future__ import annotations

from collections.abc import Sequence

from waveidp.bench.metrics.metric import Metric
from waveidp.bench.metrics.request_throughput import window
from waveidp.bench.records import RequestRecord

OUTPUT_THROUGHPUT = Metric(
    "output_tokens_per_s", "tokens/s", "out tok/s", "output token throughput", larger_is_better=True
)


def output_tokens_per_s(records: Sequence[RequestRecord]) -> float:
    """Every completed measured request's tokens, plus the share of each warm-up request's tokens
    (`--point-warmup`) whose chunks arrived inside the window: those requests run alongside the
    measured ones and the engine's throughput includes their tokens (counting only the measured
    requests read a steady c=16 run at 329 tok/s where the closed loop delivered 403)."""
    w = window(records)
    if w is None:
        return 0.0
    start, end = w
    tokens = float(sum(r.output_tokens for r in records if r.ok and not r.warmup))
    for r in records:
        if r.warmup and r.content_times:
            inside = sum(1 for t in r.content_times if start <= t <= end)
            tokens += r.output_tokens * inside / len(r.content_times)
    return tokens / (end - start)
