"""The emulated engine: one continuous-batching scheduler loop.

Each step: admit waiting requests while the batch and the KV cache have room (a request reserves
prompt + max_tokens of KV, as a slot does), then sleep for what the timing source says the step
costs — one decode step for the running batch at its mean context, plus the prefill of the newly
joined requests — then give every running request one token (newly joined ones their first).
Steps are scheduled against the monotonic clock (deadline += duration), so sleep overshoot does
not accumulate; the loop only rebases when it falls more than `max_slip_s` behind.
`abort` (the client went away) drops a request from the queue or the batch and frees its KV at
once, as vLLM and llama.cpp do; the step already under way still costs its planned time.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from time import perf_counter

from waveidp.bench.emulator.timing import StepTiming
from waveidp.bench.profiles.timing import sleep_until

END = None  # sentinel put on a sequence's queue after its last token


@dataclass(eq=False)
class Sequence:
    prompt_tokens: int
    max_tokens: int
    id: int = 0
    generated: int = 0
    received: float = 0.0
    admitted: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    finish_reason: str | None = None
    finish_as: str = "length"
    first_write: float | None = None
    last_write: float | None = None
    queue: asyncio.Queue[int | None] = field(default_factory=asyncio.Queue)

    @property
    def kv_need(self) -> int:
        return self.prompt_tokens + self.max_tokens

    @property
    def context(self) -> int:
        return self.prompt_tokens + self.generated


@dataclass
class SchedulerStats:
    steps: int = 0
    busy_s: float = 0.0
    slip_s_total: float = 0.0
    slip_s_max: float = 0.0
    rebases: int = 0
    prompt_tokens_total: int = 0
    generation_tokens_total: int = 0
    prefill_s_total: float = 0.0
    decode_s_total: float = 0.0
    busy_slots_total: int = 0
    finished: int = 0  # completed (stop or length); aborted requests are counted in `aborted`
    stopped: int = 0
    aborted: int = 0


@dataclass
class Step:
    """One engine step as planned: its duration (at speed 1), how it splits between decode and
    prompt processing, and the requests whose prompts it processes. `launch`: no batch runs, the
    engine is taking queued requests into slots (llama-server's launch window)."""

    seconds: float
    decode_s: float
    prefill_s: float
    joined: list[Sequence]
    prompt_tokens: int = 0
    launch: bool = False


class CapacityError(ValueError):
    """A request that can never fit in the emulated KV cache."""


class BatchScheduler:
    def __init__(
        self,
        timing: StepTiming,
        *,
        max_batch: int = 256,
        speed: float = 1.0,
        clock: Callable[[], float] = perf_counter,
        sleeper: Callable[[float], Awaitable[None]] = sleep_until,
        max_slip_s: float = 0.05,
        on_finish: Callable[[Sequence], None] | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.timing = timing
        self.max_batch = max_batch
        self.speed = speed
        self.clock = clock
        self.sleeper = sleeper
        self.max_slip_s = max_slip_s
        self.kv_capacity = int(timing.kv_capacity_tokens())
        # Like the sizing model's first_token_s: a request's stream reaches the client this long after
        # the step that made each token (TTFT and end-to-end grow by it, inter-token gaps do not).
        self.first_token_delay = max(0.0, float(timing.first_token_seconds())) / speed
        self.kv_used = 0
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.joining: list[Sequence] = []  # admitted this step, in prefill until the step ends
        self.stats = SchedulerStats()
        self.trace: deque[Sequence] = deque(maxlen=200_000)
        self.on_finish = on_finish
        self._ids = itertools.count(1)
        self._wake = asyncio.Event()

    @property
    def kv_usage(self) -> float:
        return self.kv_used / self.kv_capacity if self.kv_capacity else 0.0

    def submit(self, seq: Sequence) -> Sequence:
        if seq.kv_need > self.kv_capacity:
            raise CapacityError(
                f"this request needs {seq.kv_need} tokens of KV cache (prompt {seq.prompt_tokens}"
                f" + max_tokens {seq.max_tokens}) but the emulated engine holds {self.kv_capacity}"
            )
        seq.id = next(self._ids)
        seq.received = seq.received or self.clock()
        self.waiting.append(seq)
        self._wake.set()
        return seq

    def _admit(self, now: float) -> list[Sequence]:
        joined: list[Sequence] = []
        while self.waiting and len(self.running) + len(joined) < self.max_batch:
            head = self.waiting[0]
            if self.kv_used + head.kv_need > self.kv_capacity:
                break
            self.waiting.popleft()
            self.kv_used += head.kv_need
            head.admitted = now  # from here until it finishes the request holds its KV
            joined.append(head)
        return joined

    def abort(self, seq: Sequence) -> bool:
        """The client went away: drop `seq` wherever it is and free its KV now. False if it had finished."""
        if seq.finish_reason is not None:
            return False
        for place in (self.waiting, self.running, self.joining):
            if seq in place:
                place.remove(seq)
                break
        self._finish(seq, "abort")
        return True

    def _finish(self, seq: Sequence, reason: str) -> None:
        seq.finish_reason = reason
        if seq.admitted is not None:
            self.kv_used -= seq.kv_need
        st = self.stats
        if reason == "abort":
            st.aborted += 1
        else:
            st.finished += 1
            st.stopped += reason == "stop"
        self.trace.append(seq)
        self._deliver(seq, END, reason != "abort")
        if self.on_finish is not None:
            self.on_finish(seq)

    def _plan(self, now: float) -> Step | None:
        """The next step: admit waiting requests while the batch and the KV cache have room, then one
        decode step for the running batch at its mean context plus the prefill of those that joined.
        None: nothing to do."""
        if not self.running and not self.waiting:
            return None
        self.joining = joined = self._admit(now)
        decode = 0.0
        if self.running:
            mean_ctx = sum(s.context for s in self.running) // len(self.running)
            decode = self.timing.decode_step_seconds(len(self.running), mean_ctx)
        prefill = sum(self.timing.prefill_seconds(s.prompt_tokens) for s in joined)
        return Step(decode + prefill, decode, prefill, joined, sum(s.prompt_tokens for s in joined))

    async def run(self) -> None:
        deadline: float | None = None
        while True:
            now = self.clock()
            step = self._plan(now)
            if step is None:
                self._wake.clear()
                deadline = None
                await self._wake.wait()
                continue
            duration = step.seconds / self.speed
            if deadline is None or now - deadline > self.max_slip_s:
                if deadline is not None:
                    self.stats.rebases += 1
                deadline = now
            deadline += duration
            await self.sleeper(deadline)
            woke = self.clock()
            slip = woke - deadline
            self._account(slip, duration, step)
            self._emit(woke, step)

    def _deliver(self, seq: Sequence, item: int | None, delayed: bool = True) -> None:
        if delayed and self.first_token_delay > 0:
            # equal delays keep the order: call_later runs callbacks due at the same time FIFO
            asyncio.get_running_loop().call_later(self.first_token_delay, seq.queue.put_nowait, item)
        else:
            seq.queue.put_nowait(item)

    def _account(self, slip: float, duration: float, step: Step) -> None:
        st = self.stats
        st.busy_s += duration
        if step.launch:
            return
        st.steps += 1
        st.slip_s_total += max(slip, 0.0)
        st.slip_s_max = max(st.slip_s_max, slip)
        st.decode_s_total += step.decode_s / self.speed
        st.prefill_s_total += step.prefill_s / self.speed
        st.prompt_tokens_total += step.prompt_tokens
        st.busy_slots_total += self._busy_slots(step)

    def _busy_slots(self, step: Step) -> int:
        return len(self.running) + len(step.joined)

    def _emit(self, now: float, step: Step) -> None:
        # what is running now: a request aborted while the step ran gets nothing
        still = [s for s in self.running + self.joining if self._token(s, now)]
        self.running = still
        self.joining = []

    def _seen_at(self, s: Sequence, now: float) -> float:
        """When the client sees a token made at `now` (every token `first_token_delay` later)."""
        return now + self.first_token_delay

    def _token(self, s: Sequence, now: float) -> bool:
        """`s` made a token at `now`: deliver it, finish `s` after its last. True while it runs on."""
        s.generated += 1
        self.stats.generation_tokens_total += 1
        seen = self._seen_at(s, now)
        if s.first_token is None:
            s.first_token = seen
        s.last_token = seen
        self._deliver(s, s.generated)
        if s.generated >= s.max_tokens:
            self._finish(s, s.finish_as)
            return False
        return True
