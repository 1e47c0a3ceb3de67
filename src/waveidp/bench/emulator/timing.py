"""Where the emulator's step durations come from: any object with the `PerfModel` methods.

`waveidp.sizing.PerfModel` is the real source; `FixedTiming` gives exact, known step times for
tests and fidelity benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class StepTiming(Protocol):
    def prefill_seconds(self, prompt_tokens: int, batch: int = 1) -> float: ...

    def decode_step_seconds(self, batch: int, context_tokens: int) -> float: ...

    def prefill_token_seconds(self, prompt_tokens: int) -> float: ...

    def kv_capacity_tokens(self) -> int: ...

    def first_token_seconds(self) -> float: ...


@dataclass(frozen=True)
class FixedTiming:
    """Decode step = `step_s + step_per_seq_s * batch`;
    prefill = `prefill_s + prefill_per_token_s * tokens`; every token of a request reaches the client
    `first_token_s` after the step that made it (the engine's fixed per-request gap)."""

    step_s: float = 0.02
    prefill_s: float = 0.03
    step_per_seq_s: float = 0.0
    prefill_per_token_s: float = 0.0
    kv_tokens: int = 1 << 30
    first_token_s: float = 0.0

    def prefill_seconds(self, prompt_tokens: int, batch: int = 1) -> float:
        return batch * (self.prefill_s + self.prefill_per_token_s * prompt_tokens)

    def decode_step_seconds(self, batch: int, context_tokens: int) -> float:
        return self.step_s + self.step_per_seq_s * batch

    def prefill_token_seconds(self, prompt_tokens: int) -> float:
        """A prompt token inside a step that runs anyway: its share of the prompt's prefill."""
        return self.prefill_per_token_s + self.prefill_s / max(1, prompt_tokens)

    def kv_capacity_tokens(self) -> int:
        return self.kv_tokens

    def first_token_seconds(self) -> float:
        return self.first_token_s
