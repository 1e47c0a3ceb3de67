"""llama-server's scheduler as the sizing model simulates it (waveidp.sizing._schedule): batches of
N_BATCH tokens, prompts cut across them, requests that miss the batch in flight, host prompt-cache
saves on the main thread, and sliding-window prompt cuts."""

from __future__ import annotations

import pytest

from waveidp.sizing import (
    ClosedLoop,
    Deployment,
    PagedLoop,
    PerfModel,
    ServerTask,
    efficiency_for,
    loop_for,
    paged_capacity,
    steady_state_point,
)
from waveidp.sizing._schedule import N_BATCH, ROUNDS, TURNAROUND_S, simulate

RATE = 1.3e9


def _perf(model: str = "llama-3.1-8b", quant: str = "q8_0", cache: bool = True, engine: str = "llamacpp",
          rate: float | None = RATE, parallel: int = 16) -> PerfModel:  # fmt: skip
    d = Deployment.build(model, quant, ["h100-sxm"], engine, context=32768, parallel=parallel,
                         prompt_cache=cache)  # fmt: skip
    return PerfModel(
        d, efficiency_for("h100-sxm", "llamacpp").model_copy(update={"host_copy_bytes_per_s": rate})
    )


def test_one_client_pays_one_cache_save_before_each_later_prompt() -> None:
    on, off = _perf(cache=True), _perf(cache=False)
    # Llama-3.1-8B f16 KV: 128 KiB per token; a 542 + 128-token sequence is 84 MiB
    save = on.sequence_kv_bytes(670) / RATE
    assert on.sequence_kv_bytes(670) == 670 * 131072
    a, b = steady_state_point(on, 1, 542, 128), steady_state_point(off, 1, 542, 128)
    # the median of ROUNDS requests is one that follows another: it waits for that one's save
    assert a.ttft_ms - b.ttft_ms == pytest.approx(save * 1000, abs=1e-2)
    assert steady_state_point(_perf(rate=None), 1, 542, 128) == b  # no measured rate: no save


def test_vllm_has_no_host_prompt_cache() -> None:
    vllm = _perf(engine="vllm", quant="bf16")
    assert vllm.host_copy_bytes_per_s() is None
    pt = steady_state_point(vllm, 4, 542, 128)
    assert pt.ttft_ms > 0 and pt.output_tokens_per_s > 0


def test_vllm_runs_what_its_kv_blocks_hold_and_the_next_client_waits_for_a_request_to_end() -> None:
    """vLLM's scheduler (`PagedLoop`) admits requests while the KV blocks of their prompt + output are
    free: as many as `paged_capacity` counts (the router's slots), in one batch of chunked prompts;
    one client more waits until a running request ends and frees its blocks."""
    d = Deployment.build("llama-3.1-8b", "fp8", ["rtx-5070-ti"], "vllm", context=4096)
    perf = PerfModel(d)
    prompt, out = 2048, 64
    m = paged_capacity(d, prompt + out)
    assert m is not None and 2 < m < 64
    loop = loop_for(perf)
    assert isinstance(loop, PagedLoop)
    for _ in range(m + 1):
        loop.submit(ServerTask(prompt, out))
    # one 2048-token prompt per step fills the budget (with the decodes of those admitted before,
    # the next prompt is cut across two steps); the (m + 1)th waits for blocks, not for the budget
    steps = [loop.iterate(report_tokens=True) for _ in range(m + 2)]
    assert sum(it.prompt_tokens for it in steps) == m * prompt
    decodes = [len(it.generated) - len(it.started) for it in steps]
    assert all(it.prompt_tokens + k == loop.n_batch for it, k in zip(steps[: m - 1], decodes, strict=False))
    assert len(loop.in_slots()) == m and len(loop.queue) == 1
    assert steps[-1].prompt_tokens == 0 and steps[-1].seconds > 0  # decodes only
    ended = 0
    for _ in range(2 * out):
        if not loop.queue:
            break
        assert len(loop.in_slots()) == m - ended
        for task in loop.iterate().done:
            loop.release(task, 0.0)
            ended += 1
    assert not loop.queue and ended >= 1  # admitted once a request ended and freed its blocks


def test_a_burst_is_prefilled_in_batches_of_n_batch_tokens() -> None:
    perf = _perf(cache=False)
    prompt = N_BATCH // 2  # two prompts fill one batch
    one = simulate(perf, ClosedLoop(1, prompt, 2, requests=1))
    four = simulate(perf, ClosedLoop(4, prompt, 2, requests=4))
    batch = perf.prefill_batch_seconds(N_BATCH, perf.prefill_token_seconds(prompt))
    first = perf.first_token_seconds()
    assert one.ttft_s == pytest.approx(
        perf.prefill_batch_seconds(prompt, perf.prefill_token_seconds(prompt)) + first
    )
    # two prompts end with the first batch; the second also decodes the first two, so two tokens of
    # the fourth prompt spill into a third: the median lies between the first two batches' ends
    second = (
        batch + perf.decode_step_seconds(2, prompt + 1) + (N_BATCH - 2) * perf.prefill_token_seconds(prompt)
    )
    assert four.ttft_s == pytest.approx((batch + second) / 2 + first, rel=1e-6)


def test_a_request_sent_as_a_batch_starts_waits_for_that_batch() -> None:
    """Clients resend TURNAROUND_S after their last request ends: by then the next batch has started,
    so with others prefilling a resent request waits for it (the H100 logs show this)."""
    perf = _perf(cache=False)
    res = simulate(perf, ClosedLoop(8, 1500, 8, requests=16))
    alone = simulate(perf, ClosedLoop(1, 1500, 8, requests=1))
    assert res.ttft_s > 2 * alone.ttft_s
    assert TURNAROUND_S > 0


def test_a_run_is_replayed_as_recorded() -> None:
    perf = _perf(cache=False)
    full = simulate(perf, ClosedLoop(4, 512, 64, requests=40))
    cut = simulate(perf, ClosedLoop(4, 512, 64, requests=40, duration_s=1.0))
    assert full.measured == 40 and 4 <= cut.measured < 40
    skipped = simulate(perf, ClosedLoop(4, 512, 64, requests=40, skip=4))
    assert skipped.measured == 36


def test_slots_left_unsaved_by_earlier_requests_delay_the_first_prompts() -> None:
    perf = _perf(cache=True)
    clean = simulate(perf, ClosedLoop(4, 512, 32, requests=4))
    dirty = simulate(perf, ClosedLoop(4, 512, 32, requests=4, dirty_slots=16))
    assert dirty.ttft_s - clean.ttft_s == pytest.approx(16 * perf.sequence_kv_bytes(544) / RATE, rel=1e-6)


def test_sliding_window_models_cut_each_prompt_and_copy_a_checkpoint() -> None:
    gemma = _perf("gemma-3-270m", "q4_k_m", cache=False)
    assert gemma.d.model.sliding_window and gemma.window_checkpoint_bytes() > 0
    cut = simulate(gemma, ClosedLoop(1, 2000, 2, requests=1))
    without = simulate(
        _perf("gemma-3-270m", "q4_k_m", cache=False, rate=None), ClosedLoop(1, 2000, 2, requests=1)
    )
    assert cut.ttft_s - without.ttft_s == pytest.approx(2 * gemma.window_checkpoint_bytes() / RATE, rel=1e-6)


def test_default_run_has_rounds_requests_per_client() -> None:
    perf = _perf(cache=False)
    direct = simulate(perf, ClosedLoop(8, 512, 64, requests=ROUNDS * 8))
    pt = steady_state_point(perf, 8, 512, 64)
    assert pt.ttft_ms == pytest.approx(direct.ttft_s * 1000, abs=1e-3)


def test_steady_clients_wait_less_for_their_first_token_than_a_burst() -> None:
    perf = _perf(cache=False, parallel=16)
    for c in (4, 16):
        burst, steady = steady_state_point(perf, c, 542, 128), steady_state_point(perf, c, 542, 128, "steady")
        assert steady.ttft_ms < burst.ttft_ms / 2
        assert steady.output_tokens_per_s == pytest.approx(burst.output_tokens_per_s, rel=0.25)


def test_a_request_that_arrives_while_the_loop_launches_joins_the_batch() -> None:
    """llama-server takes every queued task into a slot before it builds the batch: a second client
    1 ms behind the first shares its prompt batch when launching a task takes longer than that (both
    wait for both prompts, as on the CPU of benchmarks/sizing_cpu.py), else it waits for the first's."""
    d = Deployment.build(
        "smollm2-135m", "q4_1", ["ryzen-9-9900x"], "llamacpp", threads=1, context=512, parallel=2
    )
    base = efficiency_for("ryzen-9-9900x", "llamacpp")
    burst = ClosedLoop(2, 128, 4, requests=2, starts=(0.0, 0.001))
    alone = simulate(PerfModel(d, base), ClosedLoop(1, 128, 4, requests=1)).ttft_s
    apart = simulate(PerfModel(d, base.model_copy(update={"task_launch_s": 0.0})), burst)
    shared = simulate(PerfModel(d, base.model_copy(update={"task_launch_s": 0.002})), burst)
    assert apart.ttft_s < 1.6 * alone  # the first alone, the second after it: median of the two
    assert shared.ttft_s > 1.8 * alone  # both after both prompts
