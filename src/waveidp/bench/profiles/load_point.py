"""One load point of a sweep, bounded by a request count and a duration."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

from waveidp.bench.records import RequestRecord
from waveidp.errors import InputError

Send = Callable[[RequestRecord], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class LoadPoint:
    kind: Literal["concurrency", "rate"]
    value: float
    requests: int
    duration_s: float

    @property
    def label(self) -> str:
        return f"concurrency {int(self.value)}" if self.kind == "concurrency" else f"rate {self.value:g}/s"


def _numbers(text: str, option: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"'{text}' is not a comma-separated list of numbers", where=option) from None
    if not values or any(v <= 0 for v in values):
        raise InputError(f"'{text}' must list positive numbers", where=option)
    return values


def parse_loads(
    concurrency: str | None, rate: str | None, requests: int, duration_s: float
) -> list[LoadPoint]:
    if requests < 1:
        raise InputError("must be at least 1", where="--requests")
    if duration_s <= 0:
        raise InputError("must be positive", where="--duration")
    points: list[LoadPoint] = []
    if concurrency:
        for v in _numbers(concurrency, "--concurrency"):
            if v != int(v) or v > 100_000:
                raise InputError(f"concurrency {v:g} must be a whole number <= 100000", where="--concurrency")
            points.append(LoadPoint("concurrency", int(v), requests, duration_s))
    if rate:
        points += [LoadPoint("rate", v, requests, duration_s) for v in _numbers(rate, "--rate")]
    if not points:
        points.append(LoadPoint("concurrency", 1, requests, duration_s))
    return points
