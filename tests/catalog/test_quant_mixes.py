"""The bits per weight of GGUF k-quant mixes, measured with the real `llama-quantize`.

Q4_K_M and Q5_K_M are not one block type: llama.cpp picks Q6_K for some attn_v / ffn_down layers
and the output matrix, by rules that depend on the layer index, the layer count and the GQA ratio.
A random-weight F16 model with Llama 3.1 8B's layer count (32) and GQA ratio (4), but tiny widths,
gets the same per-tensor choices; projecting those choices onto the real 8B tensor shapes gives
the file's bits per weight, which must match the catalog value cited from llama.cpp's table.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import gguf
import numpy as np
import pytest

from waveidp import catalog

pytestmark = pytest.mark.engine

LAYERS, HIDDEN, FF, HEADS, KV, VOCAB = 32, 256, 1024, 8, 2, 1024


def tiny_llama_f16(path: Path) -> None:
    rng = np.random.default_rng(0)
    head_dim = HIDDEN // HEADS
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(LAYERS)
    w.add_context_length(4096)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV)
    w.add_vocab_size(VOCAB)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"t{i}".encode() for i in range(VOCAB)])
    w.add_token_scores([0.0] * VOCAB)
    w.add_token_types([1] * VOCAB)

    def tensor(name: str, *dims: int) -> None:
        dtype = np.float32 if len(dims) == 1 else np.float16
        w.add_tensor(name, (rng.standard_normal(dims) * 0.02).astype(dtype))

    tensor("token_embd.weight", VOCAB, HIDDEN)
    tensor("output_norm.weight", HIDDEN)
    tensor("output.weight", VOCAB, HIDDEN)
    for i in range(LAYERS):
        tensor(f"blk.{i}.attn_norm.weight", HIDDEN)
        tensor(f"blk.{i}.ffn_norm.weight", HIDDEN)
        tensor(f"blk.{i}.attn_q.weight", HIDDEN, HIDDEN)
        tensor(f"blk.{i}.attn_k.weight", KV * head_dim, HIDDEN)
        tensor(f"blk.{i}.attn_v.weight", KV * head_dim, HIDDEN)
        tensor(f"blk.{i}.attn_output.weight", HIDDEN, HIDDEN)
        tensor(f"blk.{i}.ffn_gate.weight", FF, HIDDEN)
        tensor(f"blk.{i}.ffn_up.weight", FF, HIDDEN)
        tensor(f"blk.{i}.ffn_down.weight", HIDDEN, FF)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def elements_in(model: catalog.ModelSpec, role: str) -> int:
    """Element count of one tensor role of `model` (what the tiny model's role stands for)."""
    h, kv = model.hidden_size, model.kv_heads * model.head_dim
    q = model.attention_heads * model.head_dim
    return {
        "token_embd.weight": model.vocab_size * h,
        "output.weight": model.vocab_size * h,
        "output_norm.weight": h,
        "attn_norm.weight": h,
        "ffn_norm.weight": h,
        "attn_q.weight": q * h,
        "attn_k.weight": kv * h,
        "attn_v.weight": kv * h,
        "attn_output.weight": q * h,
        "ffn_gate.weight": model.intermediate_size * h,
        "ffn_up.weight": model.intermediate_size * h,
        "ffn_down.weight": model.intermediate_size * h,
    }[role]


def projected_bits_per_weight(quantized: Path, model: catalog.ModelSpec) -> float:
    bits = 0.0
    for t in gguf.GGUFReader(quantized).tensors:
        block, nbytes = gguf.GGML_QUANT_SIZES[t.tensor_type]
        role = t.name.split(".", 2)[2] if t.name.startswith("blk.") else t.name
        bits += elements_in(model, role) * nbytes * 8 / block
    return bits / model.params


@pytest.fixture(scope="module")
def f16_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("quant") / "tiny-f16.gguf"
    tiny_llama_f16(path)
    return path


MIXES = ["q4_k_m", "q5_k_m", "q4_k_s", "q5_k_s", "q3_k_s", "q3_k_m", "q3_k_l", "q2_k", "iq4_xs"]


@pytest.mark.parametrize("quant", MIXES)
def test_k_quant_mix_matches_the_catalog(f16_model: Path, quant: str) -> None:
    from waveidp.engines.local_files import llama_tool

    out = f16_model.with_name(f"tiny-{quant}.gguf")
    subprocess.run(
        [str(llama_tool("llama-quantize")), str(f16_model), str(out), quant.upper(), "2"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    model = catalog.model("llama-3.1-8b")
    assert model.layers == LAYERS and model.attention_heads // model.kv_heads == HEADS // KV
    measured = projected_bits_per_weight(out, model)
    assert measured == pytest.approx(catalog.quant(quant).bits_per_weight, abs=0.03)
    assert catalog.model_from_gguf(out).file_quant == quant
