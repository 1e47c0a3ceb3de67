"""Memory math against hand computation: every expected number is written out as arithmetic."""

from __future__ import annotations

import math

import pytest
from specs import BF16, GEMMA_3_270M, H100_SXM, JETSON, LLAMA_31_8B, LLAMA_33_70B, Q4_0, RTX_4090, RYZEN_9900X

from waveidp.sizing import Deployment, kv_bytes, kv_bytes_per_token_full, plan_memory
from waveidp.sizing._memory import llamacpp_n_ctx

GIB = 1024**3


def test_llama_31_8b_bf16_kv_is_131072_bytes_per_token() -> None:
    # 2 (K,V) x 32 layers x 8 KV heads x 128 head_dim x 2 bytes
    assert kv_bytes_per_token_full(LLAMA_31_8B, 2) == 2 * 32 * 8 * 128 * 2 == 131072
    d = Deployment(model=LLAMA_31_8B, quant=BF16, devices=[H100_SXM], engine="vllm")
    assert plan_memory(d).kv_bytes_per_token == 131072


def test_weights_are_params_times_bits_per_weight() -> None:
    d = Deployment(model=LLAMA_31_8B, quant=BF16, devices=[H100_SXM], engine="vllm")
    assert plan_memory(d).weights_bytes == 8_030_261_248 * 2


def test_a_gguf_quantization_weighs_the_tensors_llama_quantize_makes() -> None:
    """A Q4_0 file of the 8B: the 32 layers' matmuls and the input embedding in Q4_0 (18 bytes per 32
    weights), the output matrix in Q6_K (210 bytes per 256: llama-quantize's rule), the norms in F32.
    The real file (4,661,211,424 bytes) is this plus its 7.8 MB of metadata (the vocabulary)."""
    layers = 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336)
    vocab = 128256 * 4096
    norms = 8_030_261_248 - layers - 2 * vocab
    want = layers // 32 * 18 + vocab // 32 * 18 + vocab // 256 * 210 + norms * 4
    d = Deployment(model=LLAMA_31_8B, quant=Q4_0, devices=[RTX_4090], engine="llamacpp")
    assert plan_memory(d).weights_bytes == want == 4_653_375_488


def test_gguf_file_size_wins_over_bits_per_weight() -> None:
    model = LLAMA_31_8B.model_copy(update={"file_quant": "q4_0", "file_bytes": 4_661_211_424})
    d = Deployment(model=model, quant=Q4_0, devices=[RTX_4090], engine="llamacpp")
    assert plan_memory(d).weights_bytes == 4_661_211_424


def test_vllm_kv_blocks_fill_what_gpu_memory_utilization_leaves() -> None:
    d = Deployment(model=LLAMA_31_8B, quant=BF16, devices=[H100_SXM], engine="vllm")
    plan = plan_memory(d)
    budget = math.floor(0.9 * 80 * GIB)  # 77,309,411,328
    weights = 8_030_261_248 * 2
    activations = 8192 * (2 * 14336 + 4 * 4096) * 2 + 256 * 128256 * 4  # max_num_batched_tokens, logits
    overhead = 512 * 1024**2 + activations  # + CUDA context 0.5 GiB
    blocks = (budget - weights - overhead) // (16 * 131072)
    assert plan.kv_capacity_tokens == blocks * 16
    assert plan.kv_bytes == blocks * 16 * 131072
    assert plan.placements[0].used_bytes == budget  # vLLM reserves the whole budget


def test_vllm_tensor_parallel_splits_weights_and_kv_heads() -> None:
    d = Deployment(model=LLAMA_33_70B, quant=BF16, devices=[H100_SXM] * 4, engine="vllm", tp=4)
    plan = plan_memory(d)
    assert [p.weights_bytes for p in plan.placements] == [math.ceil(70_553_706_496 * 2 / 4)] * 4
    # 8 KV heads over 4 GPUs: 2 heads each, so a token costs a quarter of 2x80x8x128x2 per GPU
    per_gpu_token = 2 * 80 * 8 * 128 * 2 / 4
    free = plan.placements[0].kv_bytes
    assert free == math.ceil(plan.kv_capacity_tokens * per_gpu_token)


def test_vllm_refuses_a_model_larger_than_the_budget() -> None:
    d = Deployment(
        model=LLAMA_31_8B,
        quant=BF16,
        devices=[RTX_4090.model_copy(update={"memory_bytes": 16 * GIB})],
        engine="vllm",
    )
    plan = plan_memory(d)
    assert not plan.fits
    assert "exceed" in plan.problems[0]


def test_llamacpp_pads_total_context_to_256_and_slots_share_it() -> None:
    assert llamacpp_n_ctx(3, 1000) == 3072  # 3000 -> next multiple of 256
    assert llamacpp_n_ctx(1, 4096) == 4096
    d = Deployment(
        model=LLAMA_31_8B, quant=Q4_0, devices=[RTX_4090], engine="llamacpp", context=1000, parallel=3
    )
    plan = plan_memory(d)
    assert plan.n_ctx == 3072
    assert plan.kv_bytes == 3072 * 131072  # f16 KV for the whole padded context


def test_llamacpp_ngl_split_puts_layers_and_their_kv_where_they_run() -> None:
    d = Deployment(
        model=LLAMA_31_8B,
        quant=Q4_0,
        devices=[RTX_4090, RYZEN_9900X],
        engine="llamacpp",
        context=4096,
        n_gpu_layers=20,
    )
    plan = plan_memory(d)
    gpu, cpu = plan.placements
    embd = 128256 * 4096 * 4.5 / 8  # the token embedding in Q4_0: 295,501,824 B
    out = 128256 * 4096 * 6.5625 / 8  # the output matrix in Q6_K: 430,940,160 B
    layer = (4_653_375_488 - embd - out) / 32  # the rest split evenly over 32 layers
    assert gpu.layers == 20 and cpu.layers == 12
    assert gpu.weights_bytes == math.ceil(20 * layer)
    assert cpu.weights_bytes == math.ceil(embd + 12 * layer + out)  # input embedding + 12 layers + output
    assert gpu.kv_bytes == 20 * 4096 * 2 * 8 * 128 * 2
    assert cpu.kv_bytes == 12 * 4096 * 2 * 8 * 128 * 2
    assert plan.n_gpu_layers == 20


def test_llamacpp_auto_ngl_offloads_only_what_does_not_fit() -> None:
    small = RTX_4090.model_copy(update={"id": "gpu-8g", "memory_bytes": 8 * GIB})
    d = Deployment(model=LLAMA_31_8B, quant=BF16, devices=[small, RYZEN_9900X], engine="llamacpp")
    plan = plan_memory(d)
    gpu = plan.placements[0]
    assert 0 < plan.n_gpu_layers < 32  # 16 GB of BF16 weights cannot all go on 8 GiB
    assert gpu.used_bytes <= gpu.pool_bytes
    # one more layer would not fit
    more = plan_memory(d.model_copy(update={"n_gpu_layers": plan.n_gpu_layers + 1})).placements[0]
    assert more.used_bytes > more.pool_bytes


def test_jetson_unified_memory_is_one_pool_minus_the_os() -> None:
    d = Deployment(model=LLAMA_31_8B, quant=Q4_0, devices=[JETSON], engine="llamacpp", context=2048)
    plan = plan_memory(d)
    assert plan.placements[0].pool_bytes == 8 * GIB - int(1.5 * GIB)
    assert plan.fits
    d = Deployment(model=LLAMA_31_8B, quant=BF16, devices=[JETSON], engine="llamacpp", context=2048)
    assert not plan_memory(d).fits


def test_sliding_window_layers_keep_only_the_window() -> None:
    # Gemma 3 270M: 18 layers, 15 of them local with a 512-token window; 1 KV head x 256 dims, f16
    per_layer_token = 2 * 1 * 256 * 2
    expected = 3 * per_layer_token * 4096 + 15 * per_layer_token * 512
    assert kv_bytes(GEMMA_3_270M, 2, 4096) == expected == 20_447_232
    assert kv_bytes(GEMMA_3_270M, 2, 256) == 18 * per_layer_token * 256


@pytest.mark.parametrize(("dtype", "expected"), [("q8_0", 2 * 32 * 8 * 128 * 34 // 32), ("fp8", 65536)])
def test_kv_cache_dtype_changes_bytes_per_token(dtype: str, expected: int) -> None:
    engine = "llamacpp" if dtype == "q8_0" else "vllm"
    quant = Q4_0 if engine == "llamacpp" else BF16
    d = Deployment(model=LLAMA_31_8B, quant=quant, devices=[RTX_4090], engine=engine, kv_dtype=dtype)
    assert plan_memory(d).kv_bytes_per_token == expected
