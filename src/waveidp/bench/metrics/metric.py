"""What a report calls a metric: its results.json field, unit and labels, declared once.

Each metric module declares its own (as AIPerf declares each metric in its own class); the report
model (`waveidp.bench.report`) has one field per declared key, and every output (console, CSV,
plots, HTML, compare, predictions) takes the names and units from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from waveidp.bench.metrics.distribution import Distribution, distribution
from waveidp.bench.records import RequestRecord


@dataclass(frozen=True)
class Metric:
    key: str  # the field in results.json, e.g. "ttft_ms"
    unit: str  # "ms", "tokens", "tokens/s", "requests/s"
    label: str  # short name for table heads and plot axes, e.g. "TTFT"
    header: str  # what it is, e.g. "time to first token"
    larger_is_better: bool = False


@dataclass(frozen=True)
class RequestMetric(Metric):
    """A metric of one request, summarised over a load point as a distribution."""

    value: Callable[[RequestRecord], float | None] = field(kw_only=True)  # seconds or tokens
    scale: float = field(default=1.0, kw_only=True)  # value -> unit (1000: seconds -> ms)

    def of(self, r: RequestRecord) -> float | None:
        v = self.value(r)
        return None if v is None else v * self.scale

    def distribution(self, records: Iterable[RequestRecord]) -> Distribution:
        """Over the records where the metric is defined, in its unit."""
        return distribution((self.value(r) for r in records), self.scale)
