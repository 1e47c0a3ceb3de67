"""vLLM's step: which requests a scheduler step gives tokens to, under the engine's token budget.

vLLM's V1 scheduler (vllm/v1/core/sched/scheduler.py, `Scheduler.schedule`) has no prefill or
decode phase. Each step it gives tokens to the running requests first, in the order they were
admitted: one to each that is generating, the rest of its prompt (as much as the budget still
holds) to one whose prompt was cut. Then it admits waiting requests first come, first served while
the budget lasts and fewer than max-num-seqs run, each taking as much of its prompt as the budget
still holds: chunked prefill, on by default. A request makes its first token in the step that ends
its prompt. The budget is `max_num_batched_tokens` (`Deployment.max_num_batched_tokens`: 2048 on a
24 GB GPU, so a burst of 48 prompts of 256 tokens takes six steps).

`PagedLoop` (`_schedule`), the one model of vLLM's scheduler, plans and times every step with
`plan_step` and `step_seconds`: `wave size` and `wave bench --predict` run it on a virtual clock
against closed-loop clients, `wave emulate` in real time, and the router's idle first token is its
answer for one request. The router counts the steps a prompt that arrives alone is cut into
(`prompt_steps`, the loop's cut): each further one waits for a decode step of the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from waveidp.sizing._deployment import Deployment


@dataclass(frozen=True)
class StepPlan:
    decodes: int  # generating requests that make a token
    chunks: tuple[int, ...]  # prompt tokens for each prefilling request, then for each admitted one
    admitted: int  # waiting requests admitted (the last `admitted` chunks)

    @property
    def prompt_tokens(self) -> int:
        return sum(self.chunks)


def plan_step(
    budget: int, generating: int, prefilling: Sequence[int], waiting: Sequence[int], room: int
) -> StepPlan:
    """One step of `budget` tokens: a token for each of `generating` requests, then the prompt
    tokens still `prefilling` requests have left, then waiting prompts (their lengths, in arrival
    order) while the budget lasts and at most `room` more requests may run."""
    left = budget
    decodes = min(generating, left)
    left -= decodes
    chunks: list[int] = []
    for tokens in prefilling:
        if left <= 0:
            break
        chunks.append(min(tokens, left))
        left -= chunks[-1]
    admitted = 0
    for tokens in waiting:
        if left <= 0 or admitted >= room:
            break
        chunks.append(min(tokens, left))
        left -= chunks[-1]
        admitted += 1
    return StepPlan(decodes, tuple(chunks), admitted)


class StepCosts(Protocol):
    """What a step's time comes from: `PerfModel`, or the emulator's fixed timing."""

    def decode_step_seconds(self, batch: int, context_tokens: int) -> float: ...

    def prefill_seconds(self, prompt_tokens: int, batch: int = 1) -> float: ...

    def prefill_token_seconds(self, prompt_tokens: int) -> float: ...


def step_seconds(timing: StepCosts, decodes: int, context: int, chunks: Sequence[tuple[int, int]]) -> float:
    """A step's time: one decode step for its `decodes` generating requests at `context` tokens plus
    each prompt chunk's compute (`chunks`: tokens and the prompt's length); with no request
    generating, the first chunk is its share of a prefill of its own and the others add their
    compute."""
    rest = chunks
    if decodes:
        t = timing.decode_step_seconds(decodes, context)
    elif chunks:
        # the first chunk's share of its whole prompt's prefill (a cut prompt's later chunks attend
        # to the tokens before them, so the shares add up to the prompt's prefill)
        (k, prompt), rest = chunks[0], chunks[1:]
        t = timing.prefill_seconds(prompt) * k / max(1, prompt)
    else:
        return 0.0
    return t + sum(k * timing.prefill_token_seconds(prompt) for k, prompt in rest)


def cuts_prompts(d: Deployment) -> bool:
    """The engine's scheduler is the step above (vLLM), which `PagedLoop` runs; llama-server takes a
    prompt in its own batches (`ServerLoop`), and the other engines have no loop here."""
    return d.engine == "vllm"


def prompt_steps(d: Deployment, generating: int, prompt: int) -> int:
    """How many steps a `prompt`-token prompt that arrives alone takes beside `generating` requests
    that each take a token of every step's budget (more than one when the prompt is cut); 1 for an
    engine that does not cut prompts at a token budget."""
    if not cuts_prompts(d):
        return 1
    budget = max(d.max_num_batched_tokens, generating + 1)  # vLLM's budget always moves the prompt
    steps, left = 0, prompt
    while left > 0:
        plan = plan_step(budget, generating, [left], [], 0)
        left -= plan.chunks[0]
        steps += 1
    return steps
