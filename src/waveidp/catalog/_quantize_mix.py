"""The tensor types a GGUF file of a model would hold, computed from its shape by llama-quantize's rules.

A GGUF quantization is not one block type per file. llama-quantize (llama.cpp src/llama-quant.cpp,
`llama_tensor_get_type`) picks each tensor's type from the file type, the tensor's role, its layer
index and its row length:

- the output matrix (or the token embedding when the two are tied) gets Q6_K, or Q8_0 when its rows
  (the hidden size) are not a multiple of the file type's block;
- k-quant mixes give some attn_v / ffn_down / attn_output tensors more bits, by layer index
  (`use_more_bits`), the GQA ratio and a 70B's shape;
- a tensor whose row length is not a multiple of its type's block falls back to a 32-block type
  (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K / Q3_K -> Q4_0, IQ4_XS -> IQ4_NL; F16 where even
  32 does not divide it).

Small models have hidden sizes that are not multiples of 256 (576, 640, 896, 960, 1152) and large
vocabularies, so their Q4_K_M files are far bigger than parameters x Q4_K_M's 8B average: Qwen2.5-0.5B's
tied embedding alone is 136 M parameters at Q8_0. The rules here are the ones for a file quantized
without an importance matrix and without overrides, for dense models (MoE experts and Falcon's
special cases are not modelled: those get None, and sizing falls back to bits per weight).
"""

from __future__ import annotations

import math

from waveidp.catalog._models import ModelSpec

WeightTypes = dict[str, dict[str, int]]  # part -> GGUF tensor type -> parameters

# ggml type -> (elements per block, bytes per block): ggml-common.h (the gguf package's GGML_QUANT_SIZES)
GGML_TYPE_SIZES: dict[str, tuple[int, int]] = {
    "F32": (1, 4), "F16": (1, 2), "BF16": (1, 2),
    "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34),
    "Q2_K": (256, 84), "Q3_K": (256, 110), "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210),
    "IQ4_NL": (32, 18), "IQ4_XS": (256, 136),
}  # fmt: skip

# file type (Wave's quant id) -> the type every quantizable tensor starts from
_DEFAULT_TYPE = {
    "q4_0": "Q4_0", "q4_1": "Q4_1", "q5_0": "Q5_0", "q5_1": "Q5_1", "q8_0": "Q8_0",
    "q2_k": "Q2_K", "q3_k_s": "Q3_K", "q3_k_m": "Q3_K", "q3_k_l": "Q3_K",
    "q4_k_s": "Q4_K", "q4_k_m": "Q4_K", "q5_k_s": "Q5_K", "q5_k_m": "Q5_K", "q6_k": "Q6_K",
    "iq4_xs": "IQ4_XS",
}  # fmt: skip

# a type whose block does not divide a tensor's rows -> what llama-quantize uses instead
_FALLBACK = {
    "Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0", "IQ4_XS": "IQ4_NL",
}  # fmt: skip

# architectures whose 80-layer models llama.cpp types as LLM_TYPE_70B (models/llama.cpp, qwen2.cpp...)
_SEVENTY_B = {"llama", "qwen2", "deci", "olmo"}


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _fit_rows(kind: str, row: int) -> str:
    """`kind`, or its fallback where `row` (the tensor's input dimension) is not a multiple of its block."""
    if row % GGML_TYPE_SIZES[kind][0] == 0:
        return kind
    fallback = _FALLBACK.get(kind, kind)
    return fallback if row % GGML_TYPE_SIZES[fallback][0] == 0 else "F16"


def _layer_type(quant: str, base: str, role: str, i: int, n: int, gqa: int, seventy_b: bool) -> str:
    """llama_tensor_get_type_impl's choice for one layer tensor (no imatrix, dense, not Falcon)."""
    if role == "attn_v":
        kind = base
        if quant == "q2_k":
            kind = "Q4_K" if gqa >= 4 else "Q3_K"
        elif quant == "q3_k_m":
            kind = "Q5_K" if i < 2 else "Q4_K"
        elif quant == "q3_k_l" or (quant == "iq4_xs" and gqa >= 4):
            kind = "Q5_K"
        elif quant in ("q4_k_m", "q5_k_m") and _use_more_bits(i, n):
            kind = "Q6_K"
        elif quant == "q4_k_s" and i < 4:
            kind = "Q5_K"
        if seventy_b and kind in ("Q3_K", "Q4_K"):
            kind = "Q5_K"
        return kind
    if role == "ffn_down":
        if quant == "q2_k":
            return "Q3_K"
        if quant == "q3_k_m":
            return "Q5_K" if i < n // 16 else "Q4_K"
        if quant == "q3_k_l":
            return "Q5_K"
        if quant in ("q4_k_m", "q5_k_m") and _use_more_bits(i, n):
            return "Q6_K"
        if quant in ("iq4_xs", "q4_k_s") and i < n // 8:
            return "Q5_K"
        return base
    if role == "attn_output":
        return {"q2_k": "Q3_K", "q3_k_m": "Q4_K", "q3_k_l": "Q5_K"}.get(quant, base)
    return base


def quantized_weight_types(model: ModelSpec, quant: str) -> WeightTypes | None:
    """What a `quant` GGUF file of `model`, made by llama-quantize from F16, holds: 'layers' (the blocks'
    matmuls), 'output' (the output matrix, or the tied token embedding), 'embedding' (an untied token
    embedding) and 'other' (norms and biases, kept F32), each GGUF type -> parameters. None where the
    rules do not apply (not a quantized GGUF type, an MoE or Falcon model) or the shape does not account
    for the model's parameters (an architecture with tensors this does not enumerate)."""
    base = _DEFAULT_TYPE.get(quant)
    if base is None or model.active_params or model.architecture == "falcon":
        return None
    h, n = model.hidden_size, model.layers
    q, kv = model.attention_heads * model.head_dim, model.kv_heads * model.head_dim
    ff = model.intermediate_size
    gqa = model.attention_heads // model.kv_heads
    seventy_b = (
        n == 80
        and model.architecture in _SEVENTY_B
        and (model.architecture != "llama" or model.attention_heads != model.kv_heads)
    )
    # (role, input dimension = row length, output dimension)
    shapes = [
        ("attn_q", h, q), ("attn_k", h, kv), ("attn_v", h, kv), ("attn_output", q, h),
        ("ffn_gate", h, ff), ("ffn_up", h, ff), ("ffn_down", ff, h),
    ]  # fmt: skip
    out: WeightTypes = {"layers": {}, "output": {}, "embedding": {}, "other": {}}

    def add(part: str, kind: str, count: int) -> None:
        out[part][kind] = out[part].get(kind, 0) + count

    for i in range(n):
        for role, rows, cols in shapes:
            add("layers", _fit_rows(_layer_type(quant, base, role, i, n, gqa, seventy_b), rows), rows * cols)
    # the output matrix, and a tied token embedding with it: Q6_K unless the file type's block does not
    # divide the rows (then Q8_0); a Q8_0 file keeps Q8_0
    block = GGML_TYPE_SIZES[base][0]
    head = "Q8_0" if h % block or base == "Q8_0" else "Q6_K"
    add("output", _fit_rows(head, h), model.vocab_size * h)
    if not model.tied_embeddings:
        add("embedding", _fit_rows(base, h), model.vocab_size * h)
    counted = sum(sum(part.values()) for part in out.values())
    rest = model.params - counted
    if rest < 0 or rest > 0.01 * model.params:
        return None
    if rest:
        add("other", "F32", rest)
    return out


def weight_types(model: ModelSpec, quant: str) -> WeightTypes | None:
    """The tensor types of `model` in `quant`: its file's own where it was read from a `quant` file (or
    a file whose type its header does not name), else what llama-quantize would make (None where
    neither is known)."""
    if model.file_weight_types and model.file_quant in (quant, None):
        return model.file_weight_types
    return quantized_weight_types(model, quant)


def types_bytes(types: dict[str, int]) -> int | None:
    """Bytes of tensors holding `types` (GGUF type -> parameters); None if a type is not in the table."""
    total = 0
    for kind, count in types.items():
        size = GGML_TYPE_SIZES.get(kind)
        if size is None:
            return None
        total += math.ceil(count / size[0]) * size[1]
    return total
