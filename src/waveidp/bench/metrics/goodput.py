"""Goodput: requests that met every SLO / measurement window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from waveidp.bench.metrics.e2e import E2E
from waveidp.bench.metrics.itl import ITL
from waveidp.bench.metrics.metric import Metric, RequestMetric
from waveidp.bench.metrics.request_throughput import window_s
from waveidp.bench.metrics.ttft import TTFT
from waveidp.bench.records import RequestRecord
from waveidp.errors import InputError

GOODPUT = Metric(
    "goodput_per_s", "requests/s", "goodput/s", "requests meeting every SLO per second", larger_is_better=True
)
SLO_METRICS = (TTFT, ITL, E2E)


@dataclass(frozen=True)
class Slo:
    """Upper bounds in the unit of each SLO metric (ms), named by its key; None means no bound."""

    ttft_ms: float | None = None
    itl_ms: float | None = None
    e2e_ms: float | None = None

    def bound(self, metric: RequestMetric) -> float | None:
        return getattr(self, metric.key)

    @classmethod
    def parse(cls, text: str | None) -> Slo:
        """`ttft_ms=500,itl_ms=50` -> Slo(500, 50)."""
        if not text:
            return cls()
        keys = [m.key for m in SLO_METRICS]
        values: dict[str, float] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in keys:
                raise InputError(
                    f"bad SLO term '{part}'", where="--slo", fix="use " + ",".join(f"{k}=.." for k in keys)
                )
            try:
                values[key] = float(value)
            except ValueError:
                raise InputError(f"SLO {key} is not a number: '{value}'", where="--slo") from None
            if values[key] <= 0:
                raise InputError(f"SLO {key} must be positive", where="--slo")
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        return {m.key: b for m in SLO_METRICS if (b := self.bound(m)) is not None}


def meets_slo(r: RequestRecord, slo: Slo) -> bool:
    """A completed request meets the SLO when every bounded metric is within it.

    A one-token request has no ITL; it meets an ITL bound vacuously.
    """
    if not r.ok:
        return False
    checks = ((slo.bound(m), m.of(r)) for m in SLO_METRICS)
    return all(value is None or bound is None or value <= bound for bound, value in checks)


def goodput_per_s(records: Sequence[RequestRecord], slo: Slo) -> float:
    span = window_s(records)
    if span is None:
        return 0.0
    return sum(1 for r in records if not r.warmup and meets_slo(r, slo)) / span
