"""A shipped set of real, varied chat prompts (written for Wave; `data/chat_prompts.yaml`)."""

from __future__ import annotations

import random
from importlib import resources

import yaml

from waveidp.bench.client import RequestSpec
from waveidp.bench.datasets.lengths import LengthDist
from waveidp.bench.datasets.tokens import approx_token_count


def load_chat_prompts() -> list[str]:
    text = resources.files("waveidp.bench.datasets").joinpath("data/chat_prompts.yaml").read_text("utf-8")
    return [str(item["prompt"]) for item in yaml.safe_load(text)["prompts"]]


class ChatPrompts:
    kind = "chat"

    def __init__(self, output_tokens: LengthDist, seed: int = 0) -> None:
        self.prompts = load_chat_prompts()
        self.output_tokens = output_tokens
        self._rng = random.Random(seed)
        self._order = list(range(len(self.prompts)))
        self._rng.shuffle(self._order)
        self._i = 0

    def describe(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "prompts": str(len(self.prompts)),
            "output_tokens": str(self.output_tokens),
        }

    def next(self) -> RequestSpec:
        prompt = self.prompts[self._order[self._i % len(self._order)]]
        self._i += 1
        return RequestSpec(prompt, self.output_tokens.sample(self._rng), approx_token_count(prompt))
