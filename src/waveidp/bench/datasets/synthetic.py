"""Synthetic prompts of a sampled token length, random words so no two prompts share a long prefix."""

from __future__ import annotations

import random

from waveidp.bench.client import RequestSpec
from waveidp.bench.datasets.lengths import LengthDist

# Common English words that are one token in GPT-2/Llama/SmolLM BPE vocabularies (with a leading space).
_WORDS = (  # noqa: SIM905
    "the of and to in is was for on that with as by at from his her they this have are but not be or "
    "had one all we when there were which their an has been would what who will more no if out so said "
    "time up about than into them can only other new some could these two may first then do any like my "
    "now over such our man me even most made after also did many before must through back years where "
    "much your way well down should because each just those people how too little state good very make "
    "world still own see men work long get here between both life being under never day same another know "
    "while last might us great old year off come since against go came right used take three"
).split()


class SyntheticPrompts:
    kind = "synthetic"

    def __init__(self, input_tokens: LengthDist, output_tokens: LengthDist, seed: int = 0) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self._rng = random.Random(seed)

    def describe(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "input_tokens": str(self.input_tokens),
            "output_tokens": str(self.output_tokens),
        }

    def next(self) -> RequestSpec:
        n = self.input_tokens.sample(self._rng)
        words = self._rng.choices(_WORDS, k=n)
        return RequestSpec(" ".join(words), self.output_tokens.sample(self._rng), n)
