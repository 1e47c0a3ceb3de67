"""Constants and helpers the gateway tests share (a module of its own: `conftest` names collide
between test folders, so tests never import from it)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

HERE = Path(__file__).parent
API_KEY = "test-key-0123456789abcdefghijklmnopqrstuv"  # passes check_strength
WAVE = Path(sys.executable).with_name("wave")


def auth() -> dict[str, str]:
    return {"authorization": f"Bearer {API_KEY}"}


@dataclass(frozen=True)
class FixedPrediction:
    """A sizing prediction that says the same whatever the prompt or batch (routing tests)."""

    ttft: float
    itl: float
    slots: int | None = None
    # trusted unless a test says otherwise: most routing tests are about the forecast, not its doubt
    provenance: Literal["calibrated", "reference", "default"] = "calibrated"

    def ttft_s(self, prompt_tokens: int) -> float:
        return self.ttft

    def itl_s(self, batch: int, context: int) -> float:
        return self.itl

    def prompt_steps(self, prompt_tokens: int, running: int) -> int:
        return 1


def teach(b: object, ttft: float, itl: float, n: int = 20, model: str = "m") -> None:
    """`n` requests that saw `ttft` to the first token (idle backend) and `itl` per token (batch 1)
    teach the router's load curve of `b` for `model`, as the gateway's hooks would."""
    curve = b.learning.curve(model, b.predictions.get(model))  # type: ignore[attr-defined]
    for i in range(n):
        curve.observe_ttft(ttft, 10, 0, 10, float(i))
        curve.observe_itl(itl, 16, 1, 20, 0.0, float(i))
