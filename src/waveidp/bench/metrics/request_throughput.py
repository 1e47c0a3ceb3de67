"""Request throughput: completed requests / (first scheduled send -> last completed response)."""

from __future__ import annotations

from collections.abc import Sequence

from waveidp.bench.metrics.metric import Metric
from waveidp.bench.records import RequestRecord

REQUEST_THROUGHPUT = Metric(
    "requests_per_s", "requests/s", "req/s", "completed requests per second", larger_is_better=True
)


def window(records: Sequence[RequestRecord]) -> tuple[float, float] | None:
    """(first measured request scheduled, last measured response done); None when nothing completed."""
    measured = [r for r in records if not r.warmup]
    done = [r.done for r in measured if r.ok and r.done is not None]
    if not done:
        return None
    start, end = min(r.scheduled for r in measured), max(done)
    return (start, end) if end > start else None


def window_s(records: Sequence[RequestRecord]) -> float | None:
    """The measurement window shared by the throughput metrics; None when nothing completed."""
    w = window(records)
    return w[1] - w[0] if w else None


def requests_per_s(records: Sequence[RequestRecord]) -> float:
    span = window_s(records)
    if span is None:
        return 0.0
    return sum(1 for r in records if r.ok and not r.warmup) / span
