"""The GPU side of a node's quick calibration: fit a GPU's llama.cpp factors from a few `llama-bench`
tests run on it (all layers on the GPU, flash attention on).

What the quick tests measure and which factor each pins down:

- `tg128` of a small model (SmolLM2-135M ships with Wave): the fixed cost of a decode step, which
  dominates tiny models (`step_overhead_s`);
- `tg128` of a larger model (Gemma 3 270M, or the user's model): the share of the memory bandwidth
  decode reaches (`decode_bandwidth`);
- `pp512` and `pp128` of both: the share of the tensor peak prompt processing reaches
  (`prefill_compute`) and the per-layer cost of a prompt token that small matmuls hit
  (`prefill_layer_token_s`).

A `pp` test is predicted as the prompt-only batch of llama-server's scheduler model
(`PerfModel.prefill_batch_seconds`), a `tg` test as a decode step without llama-server's per-slot
sampling (llama-bench samples nothing), so the fitted factors are the ones `wave size`, the router and
`wave emulate` use. The fit minimises the squared log error of predicted over measured tok/s with a
weak pull towards the prior (a factor the tests cannot see stays where the prior put it); Nelder-Mead
in log space, deterministic. The per-quant multipliers of the prior are kept.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from waveidp.bench.calibrate import nelder_mead
from waveidp.catalog import Hardware, ModelSpec
from waveidp.sizing import Deployment, Efficiency, PerfModel

QUICK_PROMPTS = (128, 512)
QUICK_GEN = 128
LLAMA_BENCH_ARGS = ("-ngl", "99", "-fa", "1")  # every layer on the GPU, flash attention (llama-server's)
FITTED: dict[str, tuple[float, float]] = {
    "decode_bandwidth": (0.05, 1.0),
    "step_overhead_s": (1e-5, 0.05),
    "prefill_compute": (0.005, 1.0),
    "prefill_layer_token_s": (1e-9, 1e-4),
}
PRIOR_PULL = 0.02  # weight of log(factor / prior)^2 against a test's log(predicted / measured)^2


@dataclass(frozen=True)
class GpuTest:
    """One llama-bench result on the GPU: `n_prompt` prompt tokens (pp) or `n_gen` generated (tg)."""

    model: ModelSpec
    quant: str
    n_prompt: int
    n_gen: int
    tokens_per_s: float  # the best repetition

    @property
    def name(self) -> str:
        return f"pp{self.n_prompt}" if self.n_prompt else f"tg{self.n_gen}"


def predict_tokens_per_s(hw: Hardware, test: GpuTest, eff: Efficiency) -> float:
    """What the sizing model predicts llama-bench measures for `test` on `hw` with factors `eff`."""
    d = Deployment.build(test.model, test.quant, [hw], "llamacpp", context=test.n_prompt + test.n_gen + 256)
    perf = PerfModel(d, eff)
    if test.n_prompt:
        n = test.n_prompt
        return n / perf.prefill_batch_seconds(n, perf.prefill_token_seconds(n))
    step = perf.decode_step_seconds(1, max(1, test.n_gen // 2)) - eff.sequence_seconds(test.model.vocab_size)
    return 1.0 / step


def errors(hw: Hardware, tests: Sequence[GpuTest], eff: Efficiency) -> list[float]:
    """predicted / measured - 1 per test."""
    return [predict_tokens_per_s(hw, t, eff) / t.tokens_per_s - 1 for t in tests]


def median_abs_error(hw: Hardware, tests: Sequence[GpuTest], eff: Efficiency, kind: str) -> float | None:
    """Median |predicted/measured - 1| over the pp (kind 'pp') or tg ('tg') tests; None if there are none."""
    picked = [t for t in tests if t.name.startswith(kind)]
    if not picked:
        return None
    return statistics.median(abs(e) for e in errors(hw, picked, eff))


def fit(hw: Hardware, tests: Sequence[GpuTest], prior: Efficiency) -> Efficiency:
    """The factors that make sizing reproduce `tests` on `hw`, starting from (and pulled towards) `prior`."""
    if not tests:
        raise ValueError("nothing measured to fit")
    start = {name: min(hi, max(lo, float(getattr(prior, name)))) for name, (lo, hi) in FITTED.items()}

    def at(x: list[float]) -> Efficiency:
        values = {
            name: min(hi, max(lo, start[name] * math.exp(v)))
            for (name, (lo, hi)), v in zip(FITTED.items(), x, strict=True)
        }
        return prior.model_copy(update=values)

    def loss(x: list[float]) -> float:
        misfit = sum(math.log(1 + e) ** 2 for e in errors(hw, tests, at(x)))
        return misfit + PRIOR_PULL * sum(v * v for v in x)

    return at(nelder_mead(loss, [0.0] * len(FITTED), step=0.3, iters=400))
