"""`wave emulate` with the sizing model: the engine's scheduler from `waveidp.sizing` in real time.

`wave size` and `wave bench --predict` simulate an engine's scheduler on a virtual clock
(`waveidp.sizing.ServerLoop` for llama-server, `PagedLoop` for vLLM); here the same
loop object runs against real requests: each of its iterations is one step of `BatchScheduler`'s
real-time loop, which sleeps for what the iteration costs (divided by `--speed`) and sends the tokens
it made. So an emulated engine measured by `wave bench` and the prediction for that run come from
one model. `llama_server.LlamaServerScheduler` adds llama-server's slots and its first-token delay.
"""

from __future__ import annotations

from typing import Any

from waveidp.bench.emulator.scheduler import BatchScheduler, CapacityError, Sequence, Step
from waveidp.sizing import PagedLoop, PerfModel, ServerLoop, ServerTask


class LoopScheduler(BatchScheduler):
    """`BatchScheduler`'s real-time loop with `loop`'s iterations as its steps."""

    def __init__(self, perf: PerfModel, loop: ServerLoop, *, max_batch: int, **kw: Any) -> None:
        super().__init__(perf, max_batch=max_batch, **kw)
        self.loop = loop
        self._tasks: dict[int, ServerTask] = {}
        self._generated: list[ServerTask] = []

    def submit(self, seq: Sequence) -> Sequence:
        super().submit(seq)
        task = ServerTask(seq.prompt_tokens, seq.max_tokens, seq)
        self._tasks[seq.id] = task
        self.loop.submit(task)
        return seq

    def abort(self, seq: Sequence) -> bool:
        task = self._tasks.pop(seq.id, None)
        if task is not None and seq.finish_reason is None:
            self.loop.abort(task, self.clock())
        return super().abort(seq)

    def _plan(self, now: float) -> Step | None:
        if not self.loop.busy:
            return None
        if launch_s := self.loop.launch_seconds():
            # taking queued tasks into slots: what arrives meanwhile is taken too (ServerLoop)
            return Step(launch_s, 0.0, 0.0, [], launch=True)
        it = self.loop.iterate(report_tokens=True)
        for seq in [s for s in self.waiting if self._tasks[s.id].slot >= 0]:  # admitted just now
            self.waiting.remove(seq)
            seq.admitted = now
            self.kv_used += seq.kv_need
            self.running.append(seq)
        self._generated = it.generated
        decode = it.seconds - it.save_seconds - it.prompt_seconds
        return Step(it.seconds, decode, it.prompt_seconds, [], it.prompt_tokens)

    def _busy_slots(self, step: Step) -> int:
        return len(self.running)

    def _emit(self, now: float, step: Step) -> None:
        for task in self._generated:
            seq = task.payload
            assert isinstance(seq, Sequence)
            if seq.finish_reason is None and not self._token(seq, now):
                self._tasks.pop(seq.id, None)
                self.loop.release(task, now)
        self.running = [s for s in self.running if s.finish_reason is None]
        self._generated = []


class PagedScheduler(LoopScheduler):
    """vLLM: `PagedLoop`, requests admitted while their KV blocks are free, up to
    `max_batch` at once (vLLM's --max-num-seqs); every token reaches the client `first_token_s`
    after its step (`BatchScheduler`'s delivery)."""

    def __init__(self, perf: PerfModel, *, max_batch: int | None = None, **kw: Any) -> None:
        loop = PagedLoop(perf, max_seqs=max_batch)
        super().__init__(perf, loop, max_batch=loop.max_seqs, **kw)
        self.paged = loop

    def submit(self, seq: Sequence) -> Sequence:
        blocks = self.paged.blocks(ServerTask(seq.prompt_tokens, seq.max_tokens))
        if blocks * self.paged.block_size > self.kv_capacity:
            raise CapacityError(
                f"this request needs {blocks} KV blocks of {self.paged.block_size} tokens (prompt "
                f"{seq.prompt_tokens} + max_tokens {seq.max_tokens}) but the emulated engine holds "
                f"{self.kv_capacity // self.paged.block_size}"
            )
        return super().submit(seq)
