"""`wave emulate --engine llamacpp`: llama-server's main loop in real time, from the sizing model.

The loop is the one `wave size` and `wave bench --predict` simulate (`waveidp.sizing.ServerLoop`):
queued tasks taken into slots one by one (a task that arrives meanwhile joins the same batch),
slots taken never-used first then least recently used, batches of a token per generating slot plus
prompt tokens in slot order up to 2048, prompts cut across batches, host prompt-cache copies on the
main thread where the device's factors give a copy rate. Here each iteration sleeps for what the
model says it costs, and its tokens go to real clients. So an emulated server measured by
`wave bench` and the prediction for that run come from one model.

`first_token_s` is what the model says it is for llama-server: the time from the batch that ends a
prompt to that request's first token at the client. Only the first token waits for it; later tokens
leave with their batch (never before the first). The last one so leaves when its batch ends, and a
closed-loop client's next request reaches the server as soon as it would on the H100 (its log: a
new task ~3 ms after the last one ended, `TURNAROUND_S`), where the vLLM-like loop of
`BatchScheduler` delays every token.
"""

from __future__ import annotations

import asyncio
from typing import Any

from waveidp.bench.emulator.engine_loop import LoopScheduler
from waveidp.bench.emulator.scheduler import CapacityError, Sequence
from waveidp.sizing import PerfModel, ServerLoop


class LlamaServerScheduler(LoopScheduler):
    """`LoopScheduler` over llama-server's loop: `parallel` slots of `context` tokens each
    (llama-server's -np and -c / -np)."""

    def __init__(self, perf: PerfModel, **kw: Any) -> None:
        super().__init__(perf, ServerLoop(perf), max_batch=perf.d.parallel, **kw)
        self.slot_tokens = perf.d.context
        self.kv_capacity = perf.d.context * perf.d.parallel
        self._held: dict[int, list[int | None]] = {}  # tokens waiting for their request's first

    def submit(self, seq: Sequence) -> Sequence:
        if seq.kv_need > self.slot_tokens:
            raise CapacityError(
                f"this request needs {seq.kv_need} tokens of context (prompt {seq.prompt_tokens} + "
                f"max_tokens {seq.max_tokens}) but a slot of the emulated llama-server holds "
                f"{self.slot_tokens}"
            )
        return super().submit(seq)

    def _seen_at(self, s: Sequence, now: float) -> float:
        # the first token first_token_s after its batch, later ones with their batch but not before it
        return now + self.first_token_delay if s.first_token is None else max(now, s.first_token)

    def _deliver(self, seq: Sequence, item: int | None, delayed: bool = True) -> None:
        wait = (seq.first_token or 0.0) - self.clock() if delayed and seq.first_token is not None else 0.0
        held = self._held.get(seq.id)
        if held is not None:
            held.append(item)
        elif wait > 0:
            self._held[seq.id] = [item]
            asyncio.get_running_loop().call_later(wait, self._release, seq)
        else:
            seq.queue.put_nowait(item)

    def _release(self, seq: Sequence) -> None:
        for item in self._held.pop(seq.id, []):
            seq.queue.put_nowait(item)
