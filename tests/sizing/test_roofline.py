"""Roofline timing: exact on a bandwidth-bound case, and the directions users rely on."""

from __future__ import annotations

import pytest
from specs import BF16, H100_SXM, LLAMA_31_8B, LLAMA_33_70B, Q4_0, RTX_4090, RYZEN_9900X

from waveidp import catalog
from waveidp.catalog import Hardware
from waveidp.sizing import Deployment, Efficiency, PerfModel, plan_memory

EFF = Efficiency(decode_bandwidth=0.5, prefill_compute=0.5, step_overhead_s=0.001)


def test_batch_one_decode_is_bytes_over_achieved_bandwidth_plus_overhead() -> None:
    d = Deployment(model=LLAMA_31_8B, quant=BF16, devices=[H100_SXM], engine="vllm")
    perf = PerfModel(d, EFF)
    weights_read = 8_030_261_248 * 2 - 128256 * 4096 * 2  # the input embedding is a row lookup
    kv_read = 1000 * 131072
    expected = (weights_read + kv_read) / (3.35e12 * 0.5) + 0.001
    assert perf.decode_step_seconds(1, 1000) == pytest.approx(expected, rel=1e-9)


def test_decode_step_grows_with_batch_and_context_and_batching_raises_throughput() -> None:
    perf = PerfModel(Deployment(model=LLAMA_31_8B, quant=BF16, devices=[H100_SXM], engine="vllm"))
    assert perf.decode_step_seconds(8, 1000) > perf.decode_step_seconds(1, 1000)
    assert perf.decode_step_seconds(1, 32000) > perf.decode_step_seconds(1, 1000)
    assert 8 / perf.decode_step_seconds(8, 1000) > 4 / perf.decode_step_seconds(1, 1000)


def test_large_batches_become_compute_bound() -> None:
    perf = PerfModel(Deployment(model=LLAMA_31_8B, quant=BF16, devices=[H100_SXM], engine="vllm"), EFF)
    # at batch 1024 the matmul FLOPs take longer than reading the weights once: 2 x (params less
    # the input embedding, which is a row lookup) x batch
    flops_time = 1024 * 2 * (8_030_261_248 - 128256 * 4096) / (989.5e12 * 0.5)
    assert perf.decode_step_seconds(1024, 16) >= flops_time


def test_prefill_is_compute_bound_and_quadratic_in_attention() -> None:
    perf = PerfModel(Deployment(model=LLAMA_31_8B, quant=BF16, devices=[H100_SXM], engine="vllm"), EFF)
    t = perf.prefill_seconds(4096)
    # layers only: the embedding is a lookup and logits are needed for the last position alone
    linear = 2 * (8_030_261_248 - 2 * 128256 * 4096) * 4096 / (989.5e12 * 0.5)
    assert t > linear
    assert perf.prefill_seconds(8192) > 2 * perf.prefill_seconds(4096) - 0.001


def test_tensor_parallel_cuts_itl_but_pays_all_reduces() -> None:
    one = PerfModel(Deployment(model=LLAMA_33_70B, quant=BF16, devices=[H100_SXM] * 2, engine="vllm", tp=2))
    four = PerfModel(Deployment(model=LLAMA_33_70B, quant=BF16, devices=[H100_SXM] * 4, engine="vllm", tp=4))
    t2, t4 = one.decode_step_seconds(1, 1000), four.decode_step_seconds(1, 1000)
    assert t4 < t2
    assert t4 > t2 / 2  # all-reduce latency (2 per layer) keeps the speed-up below linear


def test_hybrid_split_time_adds_each_memorys_share() -> None:
    d = Deployment(
        model=LLAMA_31_8B, quant=Q4_0, devices=[RTX_4090, RYZEN_9900X], engine="llamacpp", n_gpu_layers=16
    )
    # compute that never binds (the CPU's llama.cpp kernels scaled up), so each device's time is
    # its bytes over its achieved bandwidth
    perf = PerfModel(d, EFF.model_copy(update={"decode_compute": 10.0}), every_device=True)
    gpu, cpu = plan_memory(d).placements
    kv = 100 * 131072
    # the CPU streams what its 12 cores (40 GB/s each without a probe) and its memory allow:
    # threads approach the memory's peak harmonically from a per-thread rate that gives one thread
    # its core's 40 GB/s (sizing/_cpu.py), times the same share
    alone = 40e9 * 89.6e9 / (89.6e9 - 40e9)
    cpu_stream = 0.5 / (1 / (12 * alone) + 1 / 89.6e9)
    # plus the CPU's layers' other ops (norms, rope, dispatch), which run apart from the streaming
    others = perf._cpu[RYZEN_9900X.id].layer_seconds(LLAMA_31_8B.layers * cpu.param_share, 1, decode=True)
    assert others > 0
    expected = (
        (gpu.read_bytes + kv * gpu.kv_share) / (1008e9 * 0.5)
        + (cpu.read_bytes + kv * cpu.kv_share) / cpu_stream
        + others
        + 0.001
    )
    assert perf.decode_step_seconds(1, 100) == pytest.approx(expected, rel=1e-9)
    all_gpu = PerfModel(d.model_copy(update={"n_gpu_layers": None}), EFF, every_device=True)
    assert all_gpu.decode_step_seconds(1, 100) < perf.decode_step_seconds(1, 100) / 3


def test_cpu_threads_limit_bandwidth_and_compute() -> None:
    d = Deployment(model=LLAMA_31_8B, quant=Q4_0, devices=[RYZEN_9900X], engine="llamacpp")
    one = PerfModel(d.model_copy(update={"threads": 1}))
    full = PerfModel(d)
    assert one.decode_step_seconds(1, 100) > full.decode_step_seconds(1, 100)
    assert one.prefill_seconds(512) > 5 * full.prefill_seconds(512)


def test_one_cpu_thread_is_compute_bound_so_batching_is_not_free() -> None:
    d = Deployment(model=LLAMA_31_8B, quant=Q4_0, devices=[RYZEN_9900X], engine="llamacpp", threads=1)
    perf = PerfModel(d)
    assert perf.decode_step_seconds(2, 100) > 1.8 * perf.decode_step_seconds(1, 100)
    gpu = PerfModel(Deployment(model=LLAMA_31_8B, quant=Q4_0, devices=[RTX_4090], engine="llamacpp"))
    # the GPU's own step (llama-server's per-slot sampling on the host CPU comes on top of it)
    assert gpu.engine_step_seconds(2, 100) < 1.1 * gpu.engine_step_seconds(1, 100)


def _orin_llama_1b(mode: Hardware | None = None) -> PerfModel:
    return PerfModel(
        Deployment.build(
            catalog.model("llama-3.2-1b"),
            "q4_k_m",
            [mode or catalog.hardware("jetson-orin-nano-super")],
            "llamacpp",
        )
    )


def test_a_gpu_with_few_slow_sms_decodes_at_its_cuda_cores_not_its_memory() -> None:
    # the Orin's 7W mode: the 15W mode's memory clock, half its SMs at 408 MHz instead of 612
    # (smolperfbenchmark: Llama-3.2-1B 82.6 ms per token against 31.0 ms)
    full = catalog.hardware("jetson-orin-nano-super")
    at_15w = full.model_copy(
        update={
            "id": "orin-15w",
            "memory_bandwidth_bytes_per_s": 68.3e9,
            "dense_flops": {k: v * 0.612 / 1.02 for k, v in full.dense_flops.items()},
            "clock_ghz": 0.612,
        }
    )
    at_7w = at_15w.model_copy(
        update={
            "id": "orin-7w",
            "dense_flops": {k: v * 0.408 / 0.612 / 2 for k, v in at_15w.dense_flops.items()},
            "clock_ghz": 0.408,
        }
    )
    t15 = _orin_llama_1b(at_15w).decode_step_seconds(1, 2176)
    t7 = _orin_llama_1b(at_7w).decode_step_seconds(1, 2176)
    assert 2.3 < t7 / t15 < 3.2  # measured 2.67; bytes alone would say 1.0
    assert 0.025 < t15 < 0.040  # measured 31.0 ms


def test_a_steps_fixed_cycles_take_the_devices_clock() -> None:
    perf = _orin_llama_1b()
    assert perf.step_overhead_seconds() == pytest.approx(perf.eff.step_overhead_cycles / 1.02e9)
    assert perf.eff.step_overhead_cycles > 0


def test_every_batch_unpacks_the_weights_on_the_cuda_cores() -> None:
    # MMVQ up to 8 tokens, MMQ beyond: both unpack each weight on the CUDA cores once per step
    perf = _orin_llama_1b()
    lanes = perf._lane_flops(perf._stages[0])
    assert lanes is not None
    for batch in (1, 9, 64):
        assert perf.engine_step_seconds(batch, 2176) > perf._flops_token / lanes
