"""vLLM's scheduler step (`waveidp.sizing.plan_step`): a token budget per step that running decodes
fill first, then cut prompts, then waiting prompts; its default by GPU; and what `PagedLoop`, the one
loop `wave size`, `wave emulate` and the router's prior run, does with it to a burst and to a long
prompt."""

from __future__ import annotations

import statistics

import pytest
from specs import BF16, H100_SXM, LLAMA_31_8B, RTX_4090

from waveidp import catalog
from waveidp.sizing import (
    ClosedLoop,
    Deployment,
    PagedLoop,
    PerfModel,
    ServerTask,
    plan_step,
    steady_state_point,
)
from waveidp.sizing._schedule import simulate


def burst(perf: PerfModel, clients: int, prompt: int, output: int) -> list[float]:
    """When each of `clients` requests that arrive together at an idle `PagedLoop` ends its prompt."""
    loop = PagedLoop(perf)
    for _ in range(clients):
        loop.submit(ServerTask(prompt, output))
    t, firsts = 0.0, []
    while len(firsts) < clients:
        it = loop.iterate()
        t += it.seconds
        firsts += [t] * len(it.started)
    return firsts


def test_vllm_takes_the_openai_servers_batch_defaults_by_gpu_memory() -> None:
    """vLLM's get_batch_defaults: 8192 tokens / 1024 requests on a GPU of 70 GiB or more that is
    not an A100, 2048 / 256 otherwise."""
    assert (
        Deployment(model=LLAMA_31_8B, quant=BF16, devices=[RTX_4090], engine="vllm").max_num_batched_tokens
        == 2048
    )
    h100 = Deployment(model=LLAMA_31_8B, quant=BF16, devices=[H100_SXM], engine="vllm")
    assert (h100.max_num_batched_tokens, h100.max_num_seqs) == (8192, 1024)
    a100 = Deployment.build(LLAMA_31_8B, BF16, [catalog.hardware("a100-80gb")], "vllm")
    assert (a100.max_num_batched_tokens, a100.max_num_seqs) == (2048, 256)


def test_a_step_gives_the_decodes_then_the_cut_prompt_then_waiting_prompts() -> None:
    plan = plan_step(2048, generating=40, prefilling=[100], waiting=[256] * 10, room=100)
    assert plan.decodes == 40
    assert plan.chunks == (100, *[256] * 7, 116)  # the eighth waiting prompt is cut at the budget
    assert plan.admitted == 8 and plan.prompt_tokens == 2048 - 40
    assert plan_step(2048, 0, [], [256] * 10, room=3).admitted == 3  # max-num-seqs


def test_a_burst_of_prompts_is_prefilled_a_budget_at_a_time() -> None:
    """48 clients with 256-token prompts start together on a 24 GB GPU: 12288 prompt tokens in steps
    of 2048 (less the decodes of those already generating), so first tokens come in seven groups and
    the median client waits for four steps. That is the first round of `wave size --arrival burst`;
    later rounds arrive spread out (each client resends when its answer ends), so the closed loop's
    median over all rounds is lower (what the emulator running the same loop measures)."""
    d = Deployment(model=LLAMA_31_8B, quant=BF16, devices=[RTX_4090], engine="vllm")
    perf = PerfModel(d)
    firsts = burst(perf, 48, 256, 128)
    assert len(set(firsts)) == 7 and firsts.count(firsts[0]) == 8
    token_s = perf.prefill_token_seconds(256)
    assert firsts[23] > 3 * 2000 * token_s  # three full steps of prompt tokens before the median's
    round_one = simulate(perf, ClosedLoop(48, 256, 128, requests=48))
    assert round_one.ttft_s == pytest.approx(statistics.median(firsts) + perf.first_token_seconds(), rel=1e-9)
    assert steady_state_point(perf, 48, 256, 128, "burst").ttft_ms < round_one.ttft_s * 1000
    # an H100's budget of 8192 holds the same burst in two steps
    h100 = PerfModel(d.model_copy(update={"devices": [H100_SXM]}))
    assert len(set(burst(h100, 48, 256, 128))) == 2


@pytest.mark.parametrize(("gpu", "steps"), [(RTX_4090, 3), (H100_SXM, 1)])
def test_a_prompt_longer_than_the_budget_takes_a_step_per_piece_beside_the_decodes(
    gpu: object, steps: int
) -> None:
    """A 4096-token prompt that arrives while 7 requests generate: on a 24 GB GPU (budget 2048) the
    loop cuts it into three steps of at most 2041 prompt tokens, each with the others' decodes; an
    H100 (8192) takes it in one. `prompt_steps`, which the router's forecast reads, counts the same."""
    from waveidp.sizing import prompt_steps

    d = Deployment(model=LLAMA_31_8B, quant=BF16, devices=[gpu], engine="vllm", context=8192)
    loop = PagedLoop(PerfModel(d))
    for _ in range(7):
        loop.submit(ServerTask(16, 1000))
    while len(loop.generating.ids) < 7:
        loop.iterate()
    loop.submit(long := ServerTask(4096, 16))
    taken = 0
    while not (it := loop.iterate()).started:
        assert it.prompt_tokens <= d.max_num_batched_tokens - 7 and it.seconds > it.prompt_seconds
        taken += 1
    assert it.started == [long] and taken + 1 == steps == prompt_steps(d, 7, 4096)
    assert prompt_steps(d, 0, 4096) == (2 if gpu is RTX_4090 else 1)


def test_the_router_waits_for_the_same_pieces_of_a_cut_prompt() -> None:
    """The gateway's forecast for a vLLM backend counts the steps `wave size` counts: a 4096-token
    prompt beside 7 streams on an RTX 4090 waits for two more decode steps than the step under way
    and its own; a llama.cpp backend takes a prompt whole."""
    from waveidp.gateway.prediction import from_sizing
    from waveidp.gateway.routing.load_curve import STEP_WAIT_STEPS, LoadCurve
    from waveidp.sizing import prompt_steps

    pred = from_sizing("mistral-7b", "bf16", ["rtx-4090"], "vllm", None)
    assert pred is not None
    assert pred.prompt_steps(4096, 7) == prompt_steps(pred.perf.d, 7, 4096) == 3
    curve = LoadCurve.start(pred)
    waited = curve.ttft_s(4096, 7, 4160) - curve.prefill_s(4096)
    assert waited == pytest.approx((STEP_WAIT_STEPS + 2) * curve.decode_s(7, 4160))
    assert curve.ttft_s(512, 7, 576) - curve.prefill_s(512) == pytest.approx(
        STEP_WAIT_STEPS * curve.decode_s(7, 576)
    )
    llama = from_sizing("mistral-7b", "q4_0", ["rtx-4090"], "llamacpp", None)
    assert llama is not None and llama.prompt_steps(4096, 7) == 1
