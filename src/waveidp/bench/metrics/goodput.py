"""Goodput: requests that met every SLO / measurement window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from waveidp.bench.metrics.e2e import e2e_s
from waveidp.bench.metrics.itl import itl_s
from waveidp.bench.metrics.request_throughput import window_s
from waveidp.bench.metrics.ttft import ttft_s
from waveidp.bench.records import RequestRecord
from waveidp.errors import InputError


@dataclass(frozen=True)
class Slo:
    """Upper bounds in milliseconds; None means no bound on that metric."""

    ttft_ms: float | None = None
    itl_ms: float | None = None
    e2e_ms: float | None = None

    @classmethod
    def parse(cls, text: str | None) -> Slo:
        """`ttft_ms=500,itl_ms=50` -> Slo(500, 50)."""
        if not text:
            return cls()
        values: dict[str, float] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in ("ttft_ms", "itl_ms", "e2e_ms"):
                raise InputError(
                    f"bad SLO term '{part}'", where="--slo", fix="use ttft_ms=..,itl_ms=..,e2e_ms=.."
                )
            try:
                values[key] = float(value)
            except ValueError:
                raise InputError(f"SLO {key} is not a number: '{value}'", where="--slo") from None
            if values[key] <= 0:
                raise InputError(f"SLO {key} must be positive", where="--slo")
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        return {
            k: v
            for k, v in (("ttft_ms", self.ttft_ms), ("itl_ms", self.itl_ms), ("e2e_ms", self.e2e_ms))
            if v is not None
        }


def meets_slo(r: RequestRecord, slo: Slo) -> bool:
    """A completed request meets the SLO when every bounded metric is within it.

    A one-token request has no ITL; it meets an ITL bound vacuously.
    """
    if not r.ok:
        return False
    checks = ((slo.ttft_ms, ttft_s(r)), (slo.itl_ms, itl_s(r)), (slo.e2e_ms, e2e_s(r)))
    return all(value is None or bound is None or value * 1000 <= bound for bound, value in checks)


def goodput_per_s(records: Sequence[RequestRecord], slo: Slo) -> float:
    span = window_s(records)
    if span is None:
        return 0.0
    return sum(1 for r in records if not r.warmup and meets_slo(r, slo)) / span
