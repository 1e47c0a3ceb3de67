"""`wave emulate --engine llamacpp` and `wave size` run one model of llama-server's scheduler
(`waveidp.sizing.ServerLoop`): emulated on a virtual clock against closed-loop clients that resend
`TURNAROUND_S` after each answer, as the simulation's clients do, the emulator's TTFT and ITL are the
simulation's."""

from __future__ import annotations

import asyncio
import statistics

import pytest

from waveidp.bench.emulator.llama_server import LlamaServerScheduler
from waveidp.bench.emulator.scheduler import BatchScheduler, Sequence
from waveidp.sizing import ClosedLoop, Deployment, PerfModel, efficiency_for
from waveidp.sizing._schedule import TURNAROUND_S, simulate


class VirtualClock:
    """Time jumps to the end of each engine step; `target` is the end of the step under way, so a
    client knows whether its next request arrives during that step (and waits for the next one)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.target = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep_until(self, t: float) -> None:
        self.target = t
        for _ in range(4):  # the clients run "during" the step
            await asyncio.sleep(0)
        self.now = max(self.now, t)


async def emulate(
    perf: PerfModel, clients: int, prompt: int, output: int, rounds: int
) -> tuple[float, float]:
    """Median TTFT and ITL of `clients` closed-loop clients, `rounds` requests each, against the
    emulated llama-server (the first requests start together, like `wave bench -c`)."""
    clock = VirtualClock()
    sched = LlamaServerScheduler(perf, clock=clock, sleeper=clock.sleep_until)
    runner = asyncio.create_task(sched.run())
    done: list[Sequence] = []

    async def client() -> None:
        sent = 1e-9
        for _ in range(rounds):
            seq = sched.submit(Sequence(prompt_tokens=prompt, max_tokens=output, received=sent))
            while await seq.queue.get() is not None:
                pass
            done.append(seq)
            # the next request is sent now and reaches the server TURNAROUND_S later: during the
            # step under way if that ends after it, else the server idles until it arrives
            assert seq.last_token is not None
            sent = seq.last_token
            while max(clock.now, clock.target) < sent + TURNAROUND_S:
                if not sched.loop.busy:
                    clock.now = sent + TURNAROUND_S
                await asyncio.sleep(0)

    await asyncio.gather(*(client() for _ in range(clients)))
    runner.cancel()
    ttft = statistics.median(s.first_token - s.received for s in done)  # type: ignore[operator]
    itl = statistics.median((s.last_token - s.first_token) / (output - 1) for s in done)  # type: ignore[operator]
    return ttft, itl


@pytest.mark.parametrize(
    ("device", "quant", "prompt", "output"),
    [
        ("rtx-5070-ti", "q4_k_m", 512, 32),  # the case: the generic GPU entry, -np 8
        ("h100-sxm", "q8_0", 768, 24),  # the measured H100 entry: host prompt-cache copies, first_token_s
    ],
)
@pytest.mark.parametrize("clients", [1, 4, 8])
def test_emulated_llama_server_times_what_wave_size_predicts(
    device: str, quant: str, prompt: int, output: int, clients: int
) -> None:
    d = Deployment.build("llama-3.1-8b", quant, [device], "llamacpp", context=4096, parallel=8)
    # first_token_s is delivered in real time (test below); here time is virtual
    perf = PerfModel(d, efficiency_for(device, "llamacpp").model_copy(update={"first_token_s": 0.0}))
    rounds = 3
    ttft, itl = asyncio.run(emulate(perf, clients, prompt, output, rounds))
    sim = simulate(perf, ClosedLoop(clients, prompt, output, requests=rounds * clients))
    assert sim.measured == rounds * clients
    assert ttft == pytest.approx(sim.ttft_s, rel=1e-9)
    assert itl == pytest.approx(sim.itl_s, rel=1e-9)


def test_the_first_token_waits_first_token_s_and_the_rest_leave_with_their_batch() -> None:
    """llama-server's first_token_s (H100: 11.2 ms) delays a request's first token only, so its last
    token, and a closed-loop client's next request, are not held back."""
    d = Deployment.build("smollm2-135m", "q4_1", ["h100-sxm"], "llamacpp", context=1024, parallel=2)
    eff = efficiency_for("h100-sxm", "llamacpp").model_copy(update={"first_token_s": 0.05})
    perf = PerfModel(d, eff)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sched = LlamaServerScheduler(perf)
        runner = asyncio.create_task(sched.run())
        t0 = loop.time()
        seq = sched.submit(Sequence(prompt_tokens=16, max_tokens=60))
        arrivals = []
        while (item := await seq.queue.get()) is not None:
            arrivals.append((item, loop.time() - t0))
        runner.cancel()
        assert [i for i, _ in arrivals] == list(range(1, 61))
        made_first = seq.first_token - 0.05  # type: ignore[operator]
        assert arrivals[0][1] >= 0.05  # the first token waits
        assert seq.last_token - made_first > 0.1  # 59 decode steps of SmolLM2 on the H100 model: ~2 ms each
        # the last token leaves with its batch, not first_token_s after it
        assert arrivals[-1][1] == pytest.approx(seq.last_token - seq.received, abs=0.03)  # type: ignore[operator]
        # tokens made while the first waited leave with it, in order
        assert arrivals[1][1] - arrivals[0][1] < 0.01

    asyncio.run(main())


def test_emulated_vllm_steps_a_burst_through_the_budget_wave_size_uses() -> None:
    """`wave emulate --engine vllm` plans its steps with vLLM's token budget for the GPU, as
    `wave size` does: 24 prompts of 256 tokens that arrive together on an RTX 4090 (budget 2048) make
    their first tokens at the times `wave size` computes for that burst."""
    from waveidp.bench.emulator.server import EmulatorConfig, _scheduler
    from waveidp.sizing._engine_step import burst_first_tokens

    d = Deployment.build("mistral-7b", "bf16", ["rtx-4090"], "vllm")
    perf = PerfModel(d)
    assert _scheduler(EmulatorConfig("m", perf, engine="vllm"), lambda s: None).token_budget == 2048

    async def main() -> list[float]:
        clock = VirtualClock()
        sched = BatchScheduler(
            perf, clock=clock, sleeper=clock.sleep_until, token_budget=d.max_num_batched_tokens
        )
        seqs = [sched.submit(Sequence(prompt_tokens=256, max_tokens=64, received=1e-9)) for _ in range(24)]
        runner = asyncio.create_task(sched.run())
        for s in seqs:
            while await s.queue.get() is not None:
                pass
        runner.cancel()
        return [s.first_token - s.received for s in seqs]  # type: ignore[operator]

    first = perf.first_token_seconds()
    expected = [t + first for t in burst_first_tokens(perf, 24, 256, 64)]
    assert asyncio.run(main()) == pytest.approx(expected, rel=1e-6)
