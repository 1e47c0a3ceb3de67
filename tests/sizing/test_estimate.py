"""Verdicts, reasons, max concurrency and engine flags of `estimate`."""

from __future__ import annotations

import pytest
from specs import BF16, H100_SXM, JETSON, LLAMA_31_8B, LLAMA_33_70B, Q4_0, RTX_4090, RTX_5070_TI, RYZEN_9900X

from waveidp.errors import InputError
from waveidp.sizing import Deployment, SizingRequest, estimate


def _est(**kw: object) -> object:
    req = {k: kw.pop(k) for k in ("prompt_tokens", "output_tokens", "concurrency") if k in kw}
    return estimate(SizingRequest(deployment=Deployment(**kw), **req))  # type: ignore[arg-type]


def test_small_model_fits_with_reasons_that_add_up() -> None:
    r = _est(model=LLAMA_31_8B, quant=Q4_0, devices=[RTX_4090], engine="llamacpp")
    assert r.verdict == "fits"
    # 4.65 GB of Q4_0 weights (a Q6_K output matrix) less the 0.30 GB input embedding that llama.cpp
    # keeps in host RAM
    assert "rtx-4090 (32 layers): weights 4.4 GB + KV 0.5 GB + overhead 0.7 GB" in r.reasons[0]
    assert r.reasons[1].startswith("host RAM: 0.3 GB")
    assert r.memory.kv_bytes_per_token == 131072
    assert r.engine_flags == {"-ngl": 33, "-c": 4096, "-np": 1}
    assert r.performance.ttft_ms > 0 and r.performance.itl_ms > 0


def test_bf16_8b_on_16gb_is_impossible_for_vllm_but_offloads_in_llamacpp() -> None:
    r = _est(model=LLAMA_31_8B, quant=BF16, devices=[RTX_5070_TI], engine="vllm")
    assert r.verdict == "impossible"
    assert r.max_concurrency == 0
    r = _est(model=LLAMA_31_8B, quant=BF16, devices=[RTX_5070_TI, RYZEN_9900X], engine="llamacpp")
    assert r.verdict == "tight"  # 15.0 GB of layers + 0.5 GB KV + 0.9 GB overhead just fit in 16 GiB at 4k
    r = _est(
        model=LLAMA_31_8B, quant=BF16, devices=[RTX_5070_TI, RYZEN_9900X], engine="llamacpp", context=16384
    )
    assert r.verdict == "offload"
    assert any("stay in system RAM" in x for x in r.reasons)
    assert 0 < r.engine_flags["-ngl"] < 33


@pytest.mark.parametrize(
    ("engine", "device", "runs_there"),
    [
        ("vllm", "core-ultra-7-258v-npu", "llamacpp"),
        ("trtllm", "ryzen-9-9900x", "vllm, llamacpp, transformers"),
    ],
)
def test_an_engine_is_refused_on_a_device_it_has_no_backend_for(
    engine: str, device: str, runs_there: str
) -> None:
    with pytest.raises(InputError) as err:
        Deployment.build("llama-3.2-1b", None, [device], engine)
    assert f"{engine} does not run on {device}" in str(err.value)
    assert err.value.where == "--engine" and runs_there in (err.value.fix or "")
    Deployment.build("llama-3.2-1b", None, [device], "llamacpp")  # llama.cpp runs on both


def test_70b_on_one_16gb_gpu_plus_cpu_decodes_at_a_few_tokens_per_second() -> None:
    # the seed's "65-95 tok/s" hybrid claim: most of 40 GB is read from 89.6 GB/s DDR5 per token
    r = _est(model=LLAMA_33_70B, quant=Q4_0, devices=[RTX_5070_TI, RYZEN_9900X], engine="llamacpp")
    assert r.verdict == "offload"
    assert r.performance.output_tokens_per_s_per_request < 5


def test_more_requests_than_kv_slots_is_tight_and_says_how_many_wait() -> None:
    r = _est(model=LLAMA_31_8B, quant=BF16, devices=[RTX_4090], engine="vllm", context=32768, concurrency=64)
    assert r.verdict == "tight"
    assert r.max_concurrency < 64
    assert any("would wait" in x for x in r.reasons)
    # vLLM pages its KV cache: requests of prompt + output tokens run while their blocks are free,
    # more than the sequences that could each grow to the full 32k context
    per_request = -(-(r.prompt_tokens + r.output_tokens) // 16) * 16
    assert r.max_concurrency < r.performance.concurrency == r.memory.kv_capacity_tokens // per_request < 64


def test_vllm_runs_short_requests_beyond_the_full_context_count_but_says_so() -> None:
    r = _est(model=LLAMA_31_8B, quant=BF16, devices=[RTX_4090], engine="vllm", context=32768, concurrency=8)
    assert r.max_concurrency < 8 and r.performance.concurrency == 8
    assert r.verdict == "tight" and any("could grow to the full 32768" in x for x in r.reasons)


def test_the_router_counts_a_vllm_backends_slots_as_sizing_runs_requests() -> None:
    from waveidp.gateway.prediction import PAGED_REQUEST_TOKENS, from_sizing

    prediction = from_sizing("llama-3.1-8b", "bf16", ["rtx-4090"], "vllm", None)
    d = Deployment.build("llama-3.1-8b", "bf16", ["rtx-4090"], "vllm")
    r = estimate(
        SizingRequest(
            deployment=d, prompt_tokens=512, output_tokens=PAGED_REQUEST_TOKENS - 512, concurrency=4096
        )
    )
    assert prediction is not None and prediction.slots == r.performance.concurrency
    # paged: more requests of 768 tokens than 4096-token sequences fit in the same KV
    assert prediction.slots > r.memory.kv_capacity_tokens // 4096
    llama = from_sizing("llama-3.1-8b", "q4_0", ["rtx-4090"], "llamacpp", None)
    assert llama is not None and llama.slots == max(1, int(llama.perf.kv_capacity_tokens() // 4096))


def test_the_routers_idle_first_token_is_what_llama_servers_scheduler_gives_one_request() -> None:
    """The router's prior and `wave size` share llama-server's model: on a CPU an idle server first
    takes the request into a slot (`task_launch_s`, 2 ms), then runs its prompt; on the H100 the
    prompt's per-layer floor (`prefill_layer_token_s`) counts as the simulation counts it (before,
    the prior was the prompt's prefill alone)."""
    from waveidp.gateway.prediction import from_sizing
    from waveidp.sizing import ClosedLoop, PerfModel
    from waveidp.sizing._schedule import simulate

    one = ClosedLoop(1, 512, 1, requests=1)
    cpu = from_sizing("smollm2-135m", "q4_1", ["ryzen-9-9900x"], "llamacpp", None)
    assert cpu is not None and cpu.perf.eff.task_launch_s == 0.002
    assert cpu.ttft_s(512) == pytest.approx(simulate(cpu.perf, one).ttft_s, rel=1e-12)
    no_launch = PerfModel(cpu.perf.d, cpu.perf.eff.model_copy(update={"task_launch_s": 0.0}))
    assert cpu.ttft_s(512) - simulate(no_launch, one).ttft_s == pytest.approx(0.002)
    h100 = from_sizing("llama-3.1-8b", "q8_0", ["h100-sxm"], "llamacpp", None)
    assert h100 is not None
    assert h100.ttft_s(512) == pytest.approx(simulate(h100.perf, one).ttft_s, rel=1e-12)
    assert h100.ttft_s(512) > 1.2 * (h100.perf.prefill_seconds(512) + h100.perf.first_token_seconds())


def test_llamacpp_reduces_slots_to_what_fits_on_a_jetson() -> None:
    r = _est(model=LLAMA_31_8B, quant=Q4_0, devices=[JETSON], engine="llamacpp", concurrency=8)
    assert r.verdict == "tight"
    assert 1 <= r.max_concurrency < 8
    assert r.engine_flags["-np"] == r.max_concurrency


def test_unified_memory_counts_the_cpu_side_buffers_in_the_one_shared_pool() -> None:
    from waveidp.sizing._data import rules

    reserve = rules().memory.unified_os_reserve_bytes  # data with its source in sizing/data/engines.yaml
    r = _est(model=LLAMA_31_8B, quant=Q4_0, devices=[JETSON], engine="llamacpp", context=2048)
    (pool,) = r.memory.devices  # one physical memory, no separate 0-byte "host-ram"
    assert (pool.device, pool.role) == ("jetson-orin-nano-super", "unified")
    assert pool.available_bytes == r.memory.available_bytes == JETSON.memory_bytes - reserve
    # the input embedding (128256 x 4096 at 4.5 bits) and host buffers are part of what the pool holds
    assert pool.cpu_side_bytes == r.memory.cpu_bytes > 128256 * 4096 * 4.5 / 8
    assert pool.used_bytes == r.memory.gpu_bytes + r.memory.cpu_bytes == r.memory.total_bytes
    assert "0.3 GB of it is llama.cpp's CPU-side" in r.reasons[0]
    assert not any("host RAM" in x for x in r.reasons)

    # a Jetson whose GPU-side share alone is below 90% of the pool but whose whole use is above it
    gpu, total = r.memory.gpu_bytes, r.memory.total_bytes
    smaller = JETSON.model_copy(update={"memory_bytes": int((gpu + total) / 2 / 0.9) + reserve})
    r = _est(model=LLAMA_31_8B, quant=Q4_0, devices=[smaller], engine="llamacpp", context=2048)
    assert r.verdict == "tight"
    assert any("jetson-orin-nano-super is 9" in x and "full" in x for x in r.reasons)
    # ... and one where the GPU-side share fits but the CPU-side buffers do not
    tiny = JETSON.model_copy(update={"memory_bytes": (gpu + total) // 2 + reserve})
    r = _est(model=LLAMA_31_8B, quant=Q4_0, devices=[tiny], engine="llamacpp", context=2048)
    assert r.verdict == "impossible"
    assert any("shared by CPU and GPU" in x for x in r.reasons)


def test_vllm_flags_and_throughput_curve() -> None:
    r = _est(model=LLAMA_33_70B, quant=BF16, devices=[H100_SXM] * 4, engine="vllm", tp=4, concurrency=32)
    assert r.verdict == "fits"
    assert r.engine_flags["--tensor-parallel-size"] == 4
    assert r.engine_flags["--max-model-len"] == 4096
    assert r.engine_flags["--gpu-memory-utilization"] == 0.9
    tps = [p.output_tokens_per_s for p in r.curve]
    assert tps == sorted(tps)  # more concurrency, more aggregate throughput
    itl = [p.itl_ms for p in r.curve]
    assert itl == sorted(itl)  # ... at a higher per-token latency


def test_steady_state_point_is_public_and_is_what_estimate_reports() -> None:
    from waveidp.sizing import PerfModel, plan_memory, steady_state_point

    d = Deployment(model=LLAMA_31_8B, quant=BF16, devices=[H100_SXM], engine="vllm")
    r = estimate(SizingRequest(deployment=d, prompt_tokens=300, output_tokens=64, concurrency=8))
    perf = PerfModel(d, plan=plan_memory(d))
    for c in (1, 8):
        pt = steady_state_point(perf, concurrency=c, prompt_tokens=300, output_tokens=64)
        assert pt == next(p for p in r.curve if p.concurrency == c)
    pt8 = steady_state_point(perf, 8, 300, 64)
    assert (pt8.ttft_ms, pt8.itl_ms) == (r.performance.ttft_ms, r.performance.itl_ms)
    # the c - 1 prefills that interleave with each request's decode make c=8 slower per token than c=1
    assert pt8.itl_ms > steady_state_point(perf, 1, 300, 64).itl_ms


def test_closed_loop_ttft_queues_behind_half_of_the_other_prompts() -> None:
    """The closed form (engines without a scheduler loop: llama.cpp and vLLM are simulated,
    test_schedule.py): c clients
    with equal requests arrive together: the median one waits for the step in flight and (c - 1) / 2
    other prompts (each at the extra cost of one more prompt in a batched prefill); the other half of
    the prompts interrupt its decode, so the work of a round is all c prefills."""
    from waveidp.sizing import PerfModel, steady_state_point

    d = Deployment(model=LLAMA_31_8B, quant=Q4_0, devices=[H100_SXM], engine="trtllm")
    perf = PerfModel(d)
    prompt, out = 542, 128
    alone = perf.prefill_seconds(prompt)
    extra = perf.prefill_seconds(prompt, batch=2) - alone
    assert 0 < extra <= alone  # batching prompts saves the weight reads, never costs more than alone
    for c in (1, 4, 64):
        step = perf.decode_step_seconds(c, prompt + out // 2)
        pt = steady_state_point(perf, c, prompt, out)
        ttft = alone + (c - 1) / 2 * extra + (step if c > 1 else 0.0) + perf.eff.first_token_s
        itl = step + (c - 1) / 2 * extra / (out - 1)
        assert pt.ttft_ms == pytest.approx(ttft * 1000, abs=1e-3)
        assert pt.itl_ms == pytest.approx(itl * 1000, abs=1e-3)
        # a round (first token + the rest) holds every client's prefill once and `out` decode steps
        e2e = (ttft + (out - 1) * itl) * 1000
        work = alone + (c - 1) * extra + (step if c > 1 else 0) + (out - 1) * step + perf.eff.first_token_s
        assert e2e == pytest.approx(work * 1000)
        assert pt.output_tokens_per_s == pytest.approx(c * out / e2e * 1000, rel=1e-4)
    ttfts = [steady_state_point(perf, c, prompt, out).ttft_ms for c in (1, 4, 16, 64)]
    assert ttfts == sorted(ttfts) and ttfts[-1] > 10 * ttfts[0]  # grows ~linearly with c


def test_steady_arrivals_wait_one_step_not_for_the_other_prompts() -> None:
    """Clients whose requests are spread out: a new prompt waits for the step in flight and is then
    prefilled; every other client's prompt interrupts its decode once per round. Same work per
    round as the burst, but the first token no longer queues behind (c - 1) / 2 prompts (closed form:
    transformers)."""
    from waveidp.sizing import PerfModel, steady_state_point

    d = Deployment(model=LLAMA_31_8B, quant=Q4_0, devices=[H100_SXM], engine="trtllm")
    perf = PerfModel(d)
    prompt, out = 542, 128
    alone = perf.prefill_seconds(prompt)
    extra = perf.prefill_seconds(prompt, batch=2) - alone
    first = perf.eff.first_token_s
    for c in (1, 16, 64):
        step = perf.decode_step_seconds(c, prompt + out // 2)
        pt = steady_state_point(perf, c, prompt, out, "steady")
        itl = step + (c - 1) * extra / (out - 1)
        assert pt.itl_ms == pytest.approx(itl * 1000, abs=1e-3)
        assert pt.ttft_ms == pytest.approx((alone + (itl if c > 1 else 0) + first) * 1000, abs=1e-3)
        burst = steady_state_point(perf, c, prompt, out, "burst")
        if c == 1:
            assert pt == burst  # one client: no pattern to speak of
        else:
            assert pt.ttft_ms < burst.ttft_ms / 3 and pt.itl_ms > burst.itl_ms


def test_arrival_is_a_request_field_and_a_bad_one_is_refused() -> None:
    from waveidp.sizing import PerfModel, steady_state_point

    d = Deployment(model=LLAMA_31_8B, quant=Q4_0, devices=[H100_SXM], engine="llamacpp", parallel=16)
    r = estimate(SizingRequest(deployment=d, prompt_tokens=512, output_tokens=128, concurrency=16))
    s = estimate(
        SizingRequest(deployment=d, prompt_tokens=512, output_tokens=128, concurrency=16, arrival="steady")
    )
    assert s.performance.ttft_ms < r.performance.ttft_ms
    assert [p.ttft_ms for p in s.curve] != [p.ttft_ms for p in r.curve]
    with pytest.raises(InputError, match="arrival"):
        steady_state_point(PerfModel(d), 4, 512, 128, "poisson")  # type: ignore[arg-type]


def test_per_sequence_host_work_grows_the_step_with_slots_and_vocabulary() -> None:
    """llama-server samples each slot on the CPU every step: a fixed part plus a part that scales
    with the vocabulary. A tiny model at c=64 is bound by it, not by its weights."""
    from waveidp.sizing import Efficiency, PerfModel

    d = Deployment(model=LLAMA_31_8B, quant=Q4_0, devices=[H100_SXM], engine="llamacpp", parallel=64)
    base = Efficiency(decode_bandwidth=0.8, prefill_compute=0.04, step_overhead_s=0.001)
    host = base.model_copy(update={"sequence_step_s": 4e-4, "sequence_step_s_per_vocab": 3e-9})
    per_seq = 4e-4 + LLAMA_31_8B.vocab_size * 3e-9
    assert host.sequence_seconds(LLAMA_31_8B.vocab_size) == pytest.approx(per_seq)
    for c in (1, 64):
        without = PerfModel(d, base).decode_step_seconds(c, 600)
        assert PerfModel(d, host).decode_step_seconds(c, 600) == pytest.approx(without + c * per_seq)
    assert PerfModel(d, host).prefill_seconds(512) == PerfModel(d, base).prefill_seconds(512)


def test_a_gpu_without_an_entry_is_served_with_llama_servers_host_work() -> None:
    """What llama-server does on the host CPU (the first token's delivery, sampling each slot, saving
    prompts to its cache) does not depend on the GPU: one Wave has no entry for gets the H100 host's
    measured values, so its served TTFT and ITL carry them. Without them, `wave calibrate --quick` on
    the H100 from this entry missed served TTFT by 59%, ITL 66%, tok/s 180% (with: 18%, 9%, 10%)."""
    from waveidp.sizing import PerfModel, efficiency_for, save_calibration

    generic = efficiency_for("rtx-4090", "llamacpp", kind="gpu")
    h100_host = efficiency_for("h100-sxm", "llamacpp")
    host_terms = ("first_token_s", "sequence_step_s", "sequence_step_s_per_vocab", "host_copy_bytes_per_s")
    soc = efficiency_for("jetson-orin-nano-super", "llamacpp", kind="soc")  # a lower bound on its Arm cores
    for name in host_terms:
        assert getattr(generic, name) == getattr(soc, name) == getattr(h100_host, name), name
    per_slot = generic.sequence_seconds(LLAMA_31_8B.vocab_size)
    assert per_slot == pytest.approx(0.381e-3 + 128_256 * 3.07e-9)  # 0.77 ms for Llama 3's vocabulary

    d = Deployment(model=LLAMA_31_8B, quant=Q4_0, devices=[RTX_4090], engine="llamacpp")
    perf = PerfModel(d)
    for c in (1, 8):  # llama-bench's rate (the engine's step) has none of it; the server's step has it
        assert perf.decode_step_seconds(c, 600) == pytest.approx(
            perf.engine_step_seconds(c, 600) + c * per_slot
        )

    def served() -> tuple[float, float]:
        r = estimate(SizingRequest(deployment=d, prompt_tokens=512, output_tokens=128, concurrency=1))
        return r.performance.ttft_ms, r.performance.itl_ms

    ttft, itl = served()
    none = {"first_token_s": 0.0, "sequence_step_s": 0.0, "sequence_step_s_per_vocab": 0.0}
    save_calibration(
        {("rtx-4090", "llamacpp"): generic.model_copy(update={**none, "host_copy_bytes_per_s": None})}
    )
    bare_ttft, bare_itl = served()
    # ms, rounded to 3 decimals; the first token comes first_token_s late, the last with its batch
    assert itl - bare_itl == pytest.approx((per_slot - generic.first_token_s / 127) * 1000, abs=2e-3)
    # the first token's delivery, and the previous request's ~90 MB of KV saved to the prompt cache
    # at 1.3 GB/s on llama-server's main thread before this one starts
    assert ttft - bare_ttft > generic.first_token_s * 1000 + 50


def test_context_beyond_the_model_is_impossible_for_vllm() -> None:
    r = _est(model=LLAMA_31_8B, quant=BF16, devices=[H100_SXM], engine="vllm", context=200_000)
    assert r.verdict == "impossible"
    assert any("trained maximum" in x for x in r.reasons)


def test_request_longer_than_context_is_refused() -> None:
    with pytest.raises(InputError, match="--context"):
        _est(
            model=LLAMA_31_8B,
            quant=Q4_0,
            devices=[RTX_4090],
            engine="llamacpp",
            context=512,
            prompt_tokens=500,
            output_tokens=100,
        )


def test_json_has_the_documented_fields() -> None:
    r = _est(model=LLAMA_31_8B, quant=Q4_0, devices=[RTX_4090], engine="llamacpp")
    data = r.model_dump(mode="json")
    for key in ("verdict", "reasons", "max_concurrency", "curve", "engine_flags"):
        assert key in data
    for key in (
        "weights_bytes",
        "kv_bytes_per_token",
        "kv_bytes",
        "overhead_bytes",
        "total_bytes",
        "gpu_bytes",
        "cpu_bytes",
    ):
        assert isinstance(data["memory"][key], int)
    for key in ("ttft_ms", "itl_ms", "output_tokens_per_s"):
        assert data["performance"][key] > 0


@pytest.mark.parametrize("engine", ["vllm", "trtllm", "transformers"])
def test_every_gpu_engine_sizes_an_8b_model_on_an_h100(engine: str) -> None:
    r = _est(model=LLAMA_31_8B, quant=BF16, devices=[H100_SXM], engine=engine, concurrency=8)
    assert r.verdict == "fits"
    assert r.max_concurrency >= 8
    assert 0 < r.performance.itl_ms < 50
    assert r.memory.weights_bytes == 8_030_261_248 * 2
