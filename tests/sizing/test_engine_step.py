"""vLLM's scheduler step (`waveidp.sizing.plan_step`): a token budget per step that running decodes
fill first, then cut prompts, then waiting prompts; its default by GPU; and what it does to a burst."""

from __future__ import annotations

import statistics

import pytest
from specs import BF16, H100_SXM, LLAMA_31_8B, RTX_4090

from waveidp import catalog
from waveidp.sizing import Deployment, PerfModel, plan_step, steady_state_point
from waveidp.sizing._engine_step import burst_first_tokens


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
    the median client waits for four steps; `wave size --arrival burst` reports that median."""
    d = Deployment(model=LLAMA_31_8B, quant=BF16, devices=[RTX_4090], engine="vllm")
    perf = PerfModel(d)
    firsts = burst_first_tokens(perf, 48, 256, 128)
    assert len(firsts) == 48 and firsts == sorted(firsts)
    assert len(set(firsts)) == 7 and firsts.count(firsts[0]) == 8
    token_s = perf.prefill_token_seconds(256)
    assert firsts[23] > 3 * 2000 * token_s  # three full steps of prompt tokens before the median's
    pt = steady_state_point(perf, 48, 256, 128, "burst")
    assert pt.ttft_ms == pytest.approx(
        (statistics.median(firsts) + perf.first_token_seconds()) * 1000, abs=1e-3
    )
    # an H100's budget of 8192 holds the same burst in two steps
    h100 = PerfModel(d.model_copy(update={"devices": [H100_SXM]}))
    assert len(set(burst_first_tokens(h100, 48, 256, 128))) == 2


def test_a_prompt_longer_than_the_budget_waits_a_decode_step_per_extra_piece() -> None:
    """Steady clients: a 4096-token prompt beside 7 generating requests on a 24 GB GPU is cut into
    three steps of at most 2041 prompt tokens, and the last two also run the others' decode step;
    an H100's budget of 8192 takes it in one step, so its TTFT is the closed form's alone."""
    from waveidp.sizing._engine_step import prompt_steps

    d = Deployment(model=LLAMA_31_8B, quant=BF16, devices=[RTX_4090], engine="vllm", context=8192)
    assert prompt_steps(d, 7, 4096) == 3 and prompt_steps(d, 7, 2041) == 1 and prompt_steps(d, 0, 4096) == 2
    h100 = d.model_copy(update={"devices": [H100_SXM]})
    assert prompt_steps(h100, 7, 4096) == 1
    for dep, extra in ((d, 2), (h100, 0)):
        perf = PerfModel(dep)
        prefill = perf.prefill_seconds(4096)
        extra_prompt = perf.prefill_seconds(4096, batch=2) - prefill
        itl = perf.decode_step_seconds(8, 4096 + 64) + 7 * extra_prompt / 127
        whole = prefill + itl + perf.first_token_seconds()  # the closed form: one step for the prompt
        cut = whole + extra * perf.decode_step_seconds(7, 4096 + 64)
        assert steady_state_point(perf, 8, 4096, 128, "steady").ttft_ms == pytest.approx(cut * 1000, abs=1e-3)


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
