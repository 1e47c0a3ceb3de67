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
from waveidp.catalog._quantize_mix import WeightTypes, quantized_weight_types, types_bytes

pytestmark = pytest.mark.engine

LAYERS, HIDDEN, FF, HEADS, KV, VOCAB = 32, 256, 1024, 8, 2, 1024


def tiny_llama_f16(
    path: Path,
    layers: int = LAYERS,
    hidden: int = HIDDEN,
    ff: int = FF,
    heads: int = HEADS,
    kv: int = KV,
    head_dim: int = HIDDEN // HEADS,
    tied: bool = False,
) -> None:
    rng = np.random.default_rng(0)
    q = heads * head_dim
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(layers)
    w.add_context_length(4096)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
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

    tensor("token_embd.weight", VOCAB, hidden)
    tensor("output_norm.weight", hidden)
    if not tied:
        tensor("output.weight", VOCAB, hidden)
    for i in range(layers):
        tensor(f"blk.{i}.attn_norm.weight", hidden)
        tensor(f"blk.{i}.ffn_norm.weight", hidden)
        tensor(f"blk.{i}.attn_q.weight", q, hidden)
        tensor(f"blk.{i}.attn_k.weight", kv * head_dim, hidden)
        tensor(f"blk.{i}.attn_v.weight", kv * head_dim, hidden)
        tensor(f"blk.{i}.attn_output.weight", hidden, q)
        tensor(f"blk.{i}.ffn_gate.weight", ff, hidden)
        tensor(f"blk.{i}.ffn_up.weight", ff, hidden)
        tensor(f"blk.{i}.ffn_down.weight", hidden, ff)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize(f16: Path, quant: str) -> Path:
    from waveidp.engines.local_files import llama_tool

    out = f16.with_name(f"{f16.stem}-{quant}.gguf")
    subprocess.run(
        [str(llama_tool("llama-quantize")), str(f16), str(out), quant.upper(), "2"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out


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


def file_types(path: Path) -> WeightTypes:
    """A GGUF file's parameters per part and tensor type, read tensor by tensor."""
    tensors = gguf.GGUFReader(path).tensors
    tied = not any(t.name == "output.weight" for t in tensors)
    out: WeightTypes = {"layers": {}, "output": {}, "embedding": {}, "other": {}}
    for t in tensors:
        if len(t.shape) < 2:
            part = "other"
        elif t.name.startswith("blk."):
            part = "layers"
        elif t.name == "output.weight" or tied:
            part = "output"
        else:
            part = "embedding"
        out[part][t.tensor_type.name] = out[part].get(t.tensor_type.name, 0) + int(t.n_elements)
    return out


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
    out = quantize(f16_model, quant)
    model = catalog.model("llama-3.1-8b")
    assert model.layers == LAYERS and model.attention_heads // model.kv_heads == HEADS // KV
    measured = projected_bits_per_weight(out, model)
    assert measured == pytest.approx(catalog.quant(quant).bits_per_weight, abs=0.03)
    assert catalog.model_from_gguf(out).file_quant == quant
    # Wave's own rules name the file's type for every tensor (tests/catalog/test_quantize_mix.py: the
    # 8B sized by them keeps the cited bits per weight)
    assert quantized_weight_types(catalog.model_from_gguf(f16_model), quant) == file_types(out)


# Row lengths that are not multiples of 256 (SmolLM2's 576 and 960, Gemma 3's 640 and 1152, Qwen2.5's
# 896): a tied, GQA-4 model of 18 layers whose hidden size (320) and MLP width (480) are multiples of 32
# only, while the attention output's input (4 heads x 64) is a multiple of 256.
AWKWARD = {"layers": 18, "hidden": 320, "ff": 480, "heads": 4, "kv": 1, "head_dim": 64, "tied": True}


@pytest.fixture(scope="module")
def awkward_f16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("awkward") / "awkward-f16.gguf"
    tiny_llama_f16(path, **AWKWARD)  # type: ignore[arg-type]
    return path


@pytest.mark.parametrize("quant", ["q4_k_m", "q5_k_m", "q3_k_m", "q2_k", "q6_k", "iq4_xs", "q4_0", "q8_0"])
def test_awkward_widths_get_llama_quantizes_fallback_types(awkward_f16: Path, quant: str) -> None:
    """llama-quantize demotes a k-quant tensor whose rows are not a multiple of 256 to a 32-block type
    and keeps a tied embedding at Q8_0; Wave's rules name the same type for every tensor, so the
    bytes of a catalog model sized without a file are the bytes of the file."""
    out = quantize(awkward_f16, quant)
    spec = catalog.model_from_gguf(awkward_f16)
    assert spec.tied_embeddings and spec.file_quant == "f16"
    want = file_types(out)
    assert quantized_weight_types(spec, quant) == want
    assert sum(types_bytes(p) or 0 for p in want.values()) == sum(
        int(t.n_bytes) for t in gguf.GGUFReader(out).tensors
    )


def test_the_packaged_gemma_file_is_what_the_catalog_gemma_weighs(gemma_path: Path) -> None:
    """Gemma 3 270M's Q4_K_M file (rows of 640): Q5_0 where Q4_K does not fit, Q8_0 attn_v and tied
    embedding, Q4_K/Q6_K attention output and MLP down; the catalog entry, sized without the file,
    gets the same types and its tensors' bytes (246,587,904 by gguf's reader: the file's 253,113,024
    less its header and vocabulary)."""
    from waveidp.sizing._memory import weights_bytes

    file = catalog.model_from_gguf(gemma_path)  # the header scan: gguf's reader takes 13 s on 262k tokens
    gemma = catalog.model("gemma-3-270m")
    computed = quantized_weight_types(gemma, "q4_k_m")
    assert computed is not None and file.file_weight_types is not None
    assert {k: v for k, v in computed.items() if k != "other"} == file.file_weight_types
    assert gemma.params == file.params
    assert weights_bytes(gemma, catalog.quant("q4_k_m")) == 246_587_904
    assert weights_bytes(file, catalog.quant("q4_k_m")) == gemma_path.stat().st_size == 253_113_024
