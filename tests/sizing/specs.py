"""Catalog entries built from the types directly, with their sources, so the sizing tests do not
depend on the catalog files' current values (the catalog tests check those)."""

from __future__ import annotations

from waveidp.catalog._models import Hardware, ModelSpec, Quant

LLAMA_31_8B = ModelSpec(
    id="llama-3.1-8b",
    name="Llama 3.1 8B",
    architecture="llama",
    params=8_030_261_248,
    layers=32,
    hidden_size=4096,
    intermediate_size=14336,
    attention_heads=32,
    kv_heads=8,
    head_dim=128,
    vocab_size=128256,
    max_context=131072,
    source="huggingface.co/meta-llama/Llama-3.1-8B config.json; params from the safetensors index",
)
LLAMA_2_7B = ModelSpec(
    id="llama-2-7b",
    name="Llama 2 7B",
    architecture="llama",
    params=6_738_415_616,
    layers=32,
    hidden_size=4096,
    intermediate_size=11008,
    attention_heads=32,
    kv_heads=32,
    head_dim=128,
    vocab_size=32000,
    max_context=4096,
    source="huggingface.co/meta-llama/Llama-2-7b-hf config.json",
)
LLAMA_33_70B = ModelSpec(
    id="llama-3.3-70b",
    name="Llama 3.3 70B",
    architecture="llama",
    params=70_553_706_496,
    layers=80,
    hidden_size=8192,
    intermediate_size=28672,
    attention_heads=64,
    kv_heads=8,
    head_dim=128,
    vocab_size=128256,
    max_context=131072,
    source="huggingface.co/meta-llama/Llama-3.3-70B-Instruct config.json",
)
GEMMA_3_270M = ModelSpec(
    id="gemma-3-270m",
    name="Gemma 3 270M",
    architecture="gemma3",
    params=268_098_176,
    layers=18,
    hidden_size=640,
    intermediate_size=2048,
    attention_heads=4,
    kv_heads=1,
    head_dim=256,
    vocab_size=262144,
    max_context=32768,
    tied_embeddings=True,
    sliding_window=512,
    sliding_window_layers=15,
    source="huggingface.co/google/gemma-3-270m config.json (5 local : 1 global layers, window 512)",
)

BF16 = Quant(
    id="bf16",
    name="BF16",
    bits_per_weight=16,
    family="float",
    compute_dtype="bf16",
    engines=("vllm", "llamacpp", "transformers", "trtllm"),
    source="2 bytes per weight",
)
F16 = Quant(
    id="f16",
    name="F16",
    bits_per_weight=16,
    family="gguf",
    compute_dtype="fp16",
    engines=("llamacpp",),
    source="ggml f16",
)
Q4_0 = Quant(
    id="q4_0",
    name="Q4_0",
    bits_per_weight=4.5,
    family="gguf",
    compute_dtype="fp16",
    engines=("llamacpp",),
    source="ggml-common.h block_q4_0: 18 bytes per 32 weights",
)
Q4_K_M = Quant(
    id="q4_k_m",
    name="Q4_K_M",
    bits_per_weight=4.89,
    family="gguf",
    compute_dtype="fp16",
    engines=("llamacpp",),
    source="llama.cpp quantize: Llama 3.1 8B Q4_K_M = 4.58 GiB / 8.03 B",
)
AWQ = Quant(
    id="int4-awq",
    name="AWQ INT4",
    bits_per_weight=4.25,
    family="int",
    compute_dtype="fp16",
    engines=("vllm", "trtllm"),
    source="4-bit weights + fp16 scale/zero per group of 128",
)

RTX_5070_TI = Hardware(
    id="rtx-5070-ti",
    name="GeForce RTX 5070 Ti",
    kind="gpu",
    vendor="nvidia",
    memory_bytes=16 * 1024**3,
    memory_bandwidth_bytes_per_s=896e9,
    dense_flops={"fp16": 87.9e12, "bf16": 87.9e12, "fp32": 43.9e12},
    fp8=True,
    fp4=True,
    compute_capability="12.0",
    interconnect="pcie5",
    interconnect_bandwidth_bytes_per_s=64e9,
    source="NVIDIA RTX Blackwell whitepaper",
)
RTX_4090 = Hardware(
    id="rtx-4090",
    name="GeForce RTX 4090",
    kind="gpu",
    vendor="nvidia",
    memory_bytes=24 * 1024**3,
    memory_bandwidth_bytes_per_s=1008e9,
    dense_flops={"fp16": 165.2e12, "bf16": 165.2e12, "fp32": 82.6e12},
    fp8=True,
    compute_capability="8.9",
    interconnect="pcie4",
    interconnect_bandwidth_bytes_per_s=32e9,
    source="NVIDIA Ada Lovelace whitepaper (fp16 dense with fp32 accumulate is 165.2 TFLOPS)",
)
H100_SXM = Hardware(
    id="h100-sxm",
    name="H100 SXM",
    kind="gpu",
    vendor="nvidia",
    memory_bytes=80 * 1024**3,
    memory_bandwidth_bytes_per_s=3.35e12,
    dense_flops={"fp16": 989e12, "bf16": 989e12, "fp8": 1979e12},
    fp8=True,
    compute_capability="9.0",
    interconnect="nvlink4",
    interconnect_bandwidth_bytes_per_s=450e9,
    source="NVIDIA H100 datasheet (dense = half the sparse figures)",
)
JETSON = Hardware(
    id="jetson-orin-nano-super",
    name="Jetson Orin Nano Super 8GB",
    kind="soc",
    vendor="nvidia",
    memory_bytes=8 * 1024**3,
    memory_bandwidth_bytes_per_s=102e9,
    dense_flops={"fp16": 17e12},
    unified_memory=True,
    compute_capability="8.7",
    source="NVIDIA Jetson Orin Nano Super datasheet",
)
RYZEN_9900X = Hardware(
    id="ryzen-9-9900x",
    name="Ryzen 9 9900X",
    kind="cpu",
    vendor="amd",
    memory_bytes=128 * 1024**3,
    memory_bandwidth_bytes_per_s=89.6e9,
    dense_flops={"fp32": 1.8e12, "bf16": 3.6e12},
    cores=12,
    cpu_flags=("avx512f",),
    source="AMD spec: DDR5-5600 dual channel = 89.6 GB/s; 12 cores x 2 x 512-bit FMA",
)
