"""Token length distributions: `512` (fixed) or `512:64` (normal, mean:stddev, clipped to >= 1)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from waveidp.errors import InputError


@dataclass(frozen=True)
class LengthDist:
    mean: int
    stddev: float = 0.0

    @classmethod
    def parse(cls, text: str, *, option: str) -> LengthDist:
        mean_text, _, std_text = text.partition(":")
        try:
            mean = int(mean_text)
            std = float(std_text) if std_text else 0.0
        except ValueError:
            raise InputError(
                f"'{text}' is not a token length", where=option, fix="use N or MEAN:STDDEV"
            ) from None
        if mean < 1 or mean > 1_000_000 or std < 0:
            raise InputError(f"'{text}' is out of range", where=option, fix="mean 1..1000000, stddev >= 0")
        return cls(mean, std)

    def sample(self, rng: random.Random) -> int:
        if self.stddev == 0:
            return self.mean
        return max(1, round(rng.gauss(self.mean, self.stddev)))

    def __str__(self) -> str:
        return f"{self.mean}" if self.stddev == 0 else f"{self.mean}:{self.stddev:g}"
