"""End-to-end latency: scheduled send -> last byte of the response."""

from __future__ import annotations

from waveidp.bench.records import RequestRecord


def e2e_s(r: RequestRecord) -> float | None:
    if not r.ok or r.done is None:
        return None
    return r.done - r.scheduled
