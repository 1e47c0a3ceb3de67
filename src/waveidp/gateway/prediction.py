"""Sizing's prediction of a backend's speed for one model, in the shape the router asks for it.

The router must also work without it (a backend whose device or model is not in the catalogs):
then only observed TTFT/ITL count. `from_sizing` returns None whenever sizing cannot say.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from waveidp.catalog import Hardware

log = logging.getLogger("waveidp.gateway")


class Prediction(Protocol):
    @property
    def slots(self) -> int | None: ...

    def ttft_s(self, prompt_tokens: int) -> float: ...

    def itl_s(self, batch: int, context: int) -> float: ...


@dataclass(frozen=True)
class SizingPrediction:
    """Wraps `waveidp.sizing.PerfModel` for one (device set, model, quant, engine)."""

    perf: Any
    slots: int | None

    def ttft_s(self, prompt_tokens: int) -> float:
        return float(self.perf.prefill_seconds(prompt_tokens))

    def itl_s(self, batch: int, context: int) -> float:
        return float(self.perf.decode_step_seconds(max(1, batch), max(1, context)))


def from_sizing(
    model: str | None,
    quant: str | None,
    devices: list[str] | list[Hardware],
    engine: str,
    max_concurrency: int | None,
) -> SizingPrediction | None:
    """Build a prediction through `waveidp.sizing`, or None (logged) when it cannot."""
    if not model or not devices:
        return None
    try:
        from waveidp import sizing

        deployment = sizing.Deployment.build(model, quant, devices, engine)
        perf = sizing.PerfModel(deployment)
        slots = max_concurrency
        if slots is None:
            cap = perf.kv_capacity_tokens()
            slots = max(1, int(cap // 4096)) if cap else None
        return SizingPrediction(perf, slots)
    except Exception as exc:  # sizing is advisory: a gap in the catalogs must not stop serving
        log.info("no sizing prediction for %s on %s (%s): %s", model, devices, engine, exc)
        return None
