"""Constants and helpers the gateway tests share (a module of its own: `conftest` names collide
between test folders, so tests never import from it)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

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

    def ttft_s(self, prompt_tokens: int) -> float:
        return self.ttft

    def itl_s(self, batch: int, context: int) -> float:
        return self.itl
