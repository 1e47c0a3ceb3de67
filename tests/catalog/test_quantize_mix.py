"""What a GGUF quantization of a catalog model weighs, by llama-quantize's per-tensor rules
(waveidp.catalog._quantize_mix; tests/catalog/test_quant_mixes.py holds them against the real tool)."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest
import yaml

from waveidp import catalog
from waveidp.catalog import ModelSpec
from waveidp.catalog._quantize_mix import GGML_TYPE_SIZES, quantized_weight_types, types_bytes
from waveidp.sizing._memory import embedding_bytes, output_bytes, weights_bytes

PUBLISHED = Path(__file__).resolve().parents[1] / "sizing/data/published.yaml"
MIXES = ["q4_k_m", "q5_k_m", "q4_k_s", "q5_k_s", "q3_k_s", "q3_k_m", "q3_k_l", "q2_k", "iq4_xs"]


def model(name: str) -> ModelSpec:
    models = yaml.safe_load(PUBLISHED.read_text())["models"]
    return ModelSpec(id=name, **models[name]) if name in models else catalog.model(name)


def test_block_sizes_are_ggmls() -> None:
    for name, size in GGML_TYPE_SIZES.items():
        assert gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[name]] == size, name


@pytest.mark.parametrize("quant", MIXES)
def test_the_8b_keeps_its_cited_bits_per_weight(quant: str) -> None:
    """quants.yaml's mixes are llama.cpp's whole-file figures on Llama 3 8B, whose widths are all
    multiples of 256: the per-tensor rules give the same file."""
    llama = catalog.model("llama-3.1-8b")
    q = catalog.quant(quant)
    assert weights_bytes(llama, q) * 8 / llama.params == pytest.approx(q.bits_per_weight, abs=0.03)


# smolperfbenchmark's Jetson report (github.com/YuvrajSingh-mist/smolperfbenchmark, the files its
# script downloads from bartowski, lmstudio-community and Qwen): "| SmolLM2-135M | Q4_K_M | 101 MB |",
# "| SmolLM2-360M | Q8_0 | 369 MB |", "| Qwen3-0.6B | Q8_0 | 610 MB |", "| Llama3.2-1B | Q4_K_M |
# 771 MB |", "| Gemma3-1B | Q4_K_M | 769 MB |". They are MiB (`ls -h`): Gemma 3 1B's tensors alone
# are 799.5e6 bytes. A file is its tensors plus the header (the vocabulary: 0.5-2.5% here).
FILES_MIB = {
    ("smollm2-135m", "q4_k_m"): 101,
    ("smollm2-360m", "q8_0"): 369,
    ("qwen3-0.6b", "q8_0"): 610,
    ("llama-3.2-1b", "q4_k_m"): 771,
    ("gemma-3-1b", "q4_k_m"): 769,
}


@pytest.mark.parametrize(("name", "quant"), list(FILES_MIB))
def test_small_models_weigh_what_their_published_files_hold(name: str, quant: str) -> None:
    spec, q = model(name), catalog.quant(quant)
    file = FILES_MIB[name, quant] * 2**20
    assert 0.975 * file < weights_bytes(spec, q) < file


def test_rows_that_are_not_multiples_of_256_fall_back_and_the_tied_embedding_is_q8_0() -> None:
    """Gemma 3 1B (hidden 1152 = 4.5 x 256): every matmul reading the hidden state is Q5_0 instead of
    Q4_K, and the tied 262k x 1152 embedding is Q8_0: 6.4 bits per weight, not the 8B's 4.9."""
    gemma = model("gemma-3-1b")
    types = quantized_weight_types(gemma, "q4_k_m")
    assert types is not None
    assert types["output"] == {"Q8_0": 262144 * 1152} and types["embedding"] == {}
    assert types["layers"]["Q5_0"] > types["layers"]["Q4_K"]
    q = catalog.quant("q4_k_m")
    assert weights_bytes(gemma, q) > 1.25 * gemma.params * q.bits_per_weight / 8
    assert embedding_bytes(gemma, q) == output_bytes(gemma, q) == 262144 * 1152 // 32 * 34


def test_an_untied_model_keeps_its_embedding_at_the_file_type_and_its_output_at_q6_k() -> None:
    llama = catalog.model("llama-3.1-8b")
    q4 = catalog.quant("q4_0")
    assert embedding_bytes(llama, q4) == 128256 * 4096 // 32 * 18
    assert output_bytes(llama, q4) == 128256 * 4096 // 256 * 210


def test_a_70b_gives_its_value_projections_more_bits() -> None:
    """llama.cpp types an 80-layer GQA Llama as 70B and raises its Q4_K attn_v to Q5_K."""
    types = quantized_weight_types(catalog.model("llama-3.3-70b"), "q4_k_m")
    assert types is not None and "Q5_K" in types["layers"]
    assert "Q5_K" not in (quantized_weight_types(catalog.model("llama-3.1-8b"), "q4_k_m") or {})["layers"]


def test_where_the_rules_do_not_apply_bits_per_weight_do() -> None:
    llama = catalog.model("llama-3.1-8b")
    moe = llama.model_copy(update={"active_params": 1_000_000_000})
    odd = llama.model_copy(update={"params": llama.params * 2})  # tensors the shape does not list
    for spec in (moe, odd):
        assert quantized_weight_types(spec, "q4_k_m") is None
        assert weights_bytes(spec, catalog.quant("q4_k_m")) == -(-spec.params * 490 // 800)
    assert quantized_weight_types(llama, "f16") is None  # not quantized: every matmul is F16
    assert types_bytes({"IQ1_S": 256}) is None
