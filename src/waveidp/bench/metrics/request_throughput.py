"""Request throughput: completed requests / (first scheduled send -> last completed response)."""

from __future__ import annotations

from collections.abc import Sequence

from waveidp.bench.records import RequestRecord


def window_s(records: Sequence[RequestRecord]) -> float | None:
    """The measurement window shared by the throughput metrics; None when nothing completed."""
    measured = [r for r in records if not r.warmup]
    done = [r.done for r in measured if r.ok and r.done is not None]
    if not done:
        return None
    start = min(r.scheduled for r in measured)
    span = max(done) - start
    return span if span > 0 else None


def requests_per_s(records: Sequence[RequestRecord]) -> float:
    span = window_s(records)
    if span is None:
        return 0.0
    return sum(1 for r in records if r.ok and not r.warmup) / span
