"""The continuous-batching scheduler on a virtual clock: step times are exactly what the timing says."""

from __future__ import annotations

import asyncio

import pytest

from waveidp.bench.emulator import BatchScheduler, FixedTiming, Sequence
from waveidp.bench.emulator.scheduler import CapacityError


class VirtualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    async def sleep_until(self, t: float) -> None:
        await asyncio.sleep(0)  # others run "during" the step, then time jumps to its end
        self.now = max(self.now, t)


async def drain(seq: Sequence) -> list[int]:
    tokens = []
    while (item := await seq.queue.get()) is not None:
        tokens.append(item)
    return tokens


def make(timing: FixedTiming, **kw: object) -> tuple[BatchScheduler, VirtualClock]:
    clock = VirtualClock()
    return BatchScheduler(timing, clock=clock, sleeper=clock.sleep_until, **kw), clock  # type: ignore[arg-type]


def test_one_request_prefill_then_one_token_per_step() -> None:
    async def main() -> None:
        sched, _ = make(FixedTiming(step_s=0.02, prefill_s=0.04))
        task = asyncio.create_task(sched.run())
        seq = sched.submit(Sequence(prompt_tokens=10, max_tokens=26))
        assert await drain(seq) == list(range(1, 27))
        task.cancel()
        assert seq.first_token - seq.received == pytest.approx(0.04)  # type: ignore[operator]
        assert seq.last_token - seq.first_token == pytest.approx(25 * 0.02)  # type: ignore[operator]
        assert sched.kv_used == 0 and seq.finish_reason == "length"

    asyncio.run(main())


def test_a_joining_request_adds_its_prefill_to_the_running_batchs_step() -> None:
    async def main() -> None:
        timing = FixedTiming(step_s=0.01, prefill_s=0.03, step_per_seq_s=0.001)
        sched, clock = make(timing)
        task = asyncio.create_task(sched.run())
        a = sched.submit(Sequence(prompt_tokens=8, max_tokens=10))
        while a.generated < 3:
            await asyncio.sleep(0)
        t_a3 = clock.now  # A's third token was just emitted and its fourth step is under way
        b = sched.submit(Sequence(prompt_tokens=8, max_tokens=3))
        await asyncio.gather(drain(a), drain(b))
        task.cancel()
        assert b.received == t_a3
        # B waits for the step boundary, then joins: A's batch-1 decode + B's prefill in one step
        assert b.admitted == pytest.approx(t_a3 + 0.011)
        assert b.first_token == pytest.approx(t_a3 + 0.011 + (0.011 + 0.03))
        # then batch-2 decode steps until B is done, then batch-1 again for A's last three tokens
        assert b.last_token == pytest.approx(b.first_token + 2 * 0.012)  # type: ignore[operator]
        assert a.last_token == pytest.approx(b.last_token + 3 * 0.011)  # type: ignore[operator]

    asyncio.run(main())


def test_requests_wait_while_the_kv_cache_is_full() -> None:
    async def main() -> None:
        sched, _ = make(FixedTiming(step_s=0.01, prefill_s=0.01, kv_tokens=50))
        task = asyncio.create_task(sched.run())
        a = sched.submit(Sequence(prompt_tokens=10, max_tokens=30))  # reserves 40 of 50
        b = sched.submit(Sequence(prompt_tokens=10, max_tokens=30))
        while a.generated < 1:
            await asyncio.sleep(0)
        assert len(sched.running) == 1 and len(sched.waiting) == 1 and sched.kv_usage == pytest.approx(0.8)
        await asyncio.gather(drain(a), drain(b))
        task.cancel()
        assert b.admitted == pytest.approx(a.last_token)  # admitted at the first step after A freed its KV
        with pytest.raises(CapacityError, match="needs 60 tokens"):
            sched.submit(Sequence(prompt_tokens=10, max_tokens=50))

    asyncio.run(main())


def test_max_batch_caps_the_running_set_and_aborted_requests_free_their_slot_and_kv() -> None:
    async def main() -> None:
        sched, _ = make(FixedTiming(step_s=0.01, prefill_s=0.0), max_batch=2)
        task = asyncio.create_task(sched.run())
        seqs = [sched.submit(Sequence(prompt_tokens=1, max_tokens=100)) for _ in range(4)]
        while seqs[0].generated < 2:
            await asyncio.sleep(0)
        assert {id(s) for s in sched.running} == {id(seqs[0]), id(seqs[1])}
        assert sched.abort(seqs[3])  # still queued: leaves the queue, held no KV
        assert list(sched.waiting) == [seqs[2]] and sched.kv_used == 2 * 101
        assert sched.abort(seqs[0])  # running: KV comes back at once, not at the end of the step
        assert seqs[0].finish_reason == "abort" and sched.kv_used == 101
        while seqs[2].generated < 1:
            await asyncio.sleep(0)
        assert seqs[2] in sched.running and seqs[3].generated == 0
        for s in seqs[1:3]:
            sched.abort(s)
        assert not sched.running and not sched.waiting and sched.kv_used == 0
        assert sched.stats.aborted == 4 and sched.stats.finished == 0
        assert not sched.abort(seqs[0])  # finished already: nothing to do, counted once
        task.cancel()

    asyncio.run(main())


def test_first_token_gap_delays_the_stream_not_the_steps() -> None:
    """The sizing model's first_token_s: TTFT and e2e grow by it, inter-token gaps and the GPU's
    schedule do not (a second request is not held back by the first one's gap)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sched = BatchScheduler(FixedTiming(step_s=0.01, prefill_s=0.02, first_token_s=0.15))
        task = asyncio.create_task(sched.run())
        t0 = loop.time()
        seq = sched.submit(Sequence(prompt_tokens=10, max_tokens=6))
        arrivals = []
        while (item := await seq.queue.get()) is not None:
            arrivals.append((item, loop.time() - t0))
        task.cancel()
        assert [i for i, _ in arrivals] == list(range(1, 7))
        first = arrivals[0][1]
        assert 0.02 + 0.15 <= first < 0.02 + 0.15 + 0.08
        assert seq.first_token - seq.received == pytest.approx(0.17, abs=0.03)  # type: ignore[operator]
        assert seq.last_token - seq.first_token == pytest.approx(5 * 0.01, abs=0.03)  # type: ignore[operator]
        assert sched.stats.steps == 6  # the engine went on stepping while the stream was delayed

    asyncio.run(main())
