"""Parameter count of a dense decoder-only transformer from its shape (what a config.json lacks).

Counts embeddings, per-layer attention (q, k, v, o), the gated MLP (gate, up, down), RMSNorm
weights, and the output head when it is not tied. Architecture quirks that change the count:
Qwen2 adds biases to q/k/v; Gemma 3 and Qwen3 add q/k norms and Gemma extra pre/post-FFN norms.
Exact for Llama 3.x (8,030,261,248 for 3.1 8B, the safetensors total) and Mistral.
"""

from __future__ import annotations

_QKV_BIAS = {"qwen2"}
_QK_NORM = {"gemma3", "qwen3"}
_FOUR_NORMS = {"gemma2", "gemma3"}


def dense_params(
    *,
    architecture: str,
    layers: int,
    hidden: int,
    intermediate: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    vocab: int,
    tied: bool,
) -> int:
    q = hidden * heads * head_dim
    kv = 2 * hidden * kv_heads * head_dim
    o = heads * head_dim * hidden
    mlp = 3 * hidden * intermediate
    norms = (4 if architecture in _FOUR_NORMS else 2) * hidden
    per_layer = q + kv + o + mlp + norms
    if architecture in _QKV_BIAS:
        per_layer += heads * head_dim + 2 * kv_heads * head_dim
    if architecture in _QK_NORM:
        per_layer += 2 * head_dim
    embeddings = vocab * hidden
    head = 0 if tied else vocab * hidden
    return embeddings + layers * per_layer + hidden + head
