"""The built-in catalogs: every entry loads, ids are sane, every number has a source, and the
datasheet figures are the dense ones."""

from __future__ import annotations

import re
from pathlib import Path

import gguf
import pytest
import yaml

from waveidp import catalog
from waveidp.catalog._registry import DATA_DIR
from waveidp.errors import NotFoundError

ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# A source names a document with a year, or a URL, or shows its arithmetic (a product and a result).
CITED = re.compile(r"(https?://|\b(19|20)\d\d\b|\d.*\sx\s.*=)")
GIB = 1024**3
T = 1e12


def raw(name: str) -> dict:
    return yaml.safe_load((DATA_DIR / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", ["hardware", "models", "quants"])
def test_every_entry_loads_with_a_valid_id(name: str) -> None:
    entries = getattr(catalog, f"all_{name}")()
    assert set(entries) == set(raw(name))
    for entry_id, entry in entries.items():
        assert ID.match(entry_id), entry_id
        assert entry.id == entry_id


@pytest.mark.parametrize("name", ["hardware", "models", "quants"])
def test_every_numeric_field_has_a_cited_source(name: str) -> None:
    for entry_id, fields in raw(name).items():
        sources = fields.get("sources", {})
        for field, value in fields.items():
            numbers = value if isinstance(value, dict) else {"": value}
            for sub, number in numbers.items():
                if field == "sources" or isinstance(number, bool) or not isinstance(number, int | float):
                    continue
                text = sources.get(f"{field}.{sub}", sources.get(field, fields["source"]))
                assert CITED.search(text), f"{entry_id}.{field}: source '{text}' cites nothing"


def test_requested_entries_exist() -> None:
    assert {
        "h100-sxm",
        "h100-pcie",
        "h200",
        "a100-40gb",
        "a100-80gb",
        "l40s",
        "rtx-3080",
        "rtx-3090",
        "rtx-4090",
        "rtx-5090",
        "rtx-5070-ti",
        "gtx-1650",
        "jetson-orin-nano-super",
        "ryzen-9-9900x",
        "i9-9980hk",
        "core-ultra-7-258v",
        "core-ultra-7-258v-npu",
        "cpu-generic",
        "t4",
        "l4",
        "rtx-6000-ada",
    } <= set(catalog.all_hardware())
    assert {
        "llama-3.1-8b",
        "llama-3.2-1b",
        "llama-3.2-3b",
        "llama-3.3-70b",
        "llama-3.1-70b",
        "mistral-7b",
        "gemma-3-270m",
        "qwen2.5-7b",
        "smollm2-135m",
    } <= set(catalog.all_models())
    assert {
        "bf16",
        "fp16",
        "fp8",
        "int8",
        "awq",
        "gptq",
        "q8_0",
        "q6_k",
        "q5_k_m",
        "q4_k_m",
        "q4_0",
        "q4_1",
        "f16",
        "f32",
    } <= set(catalog.all_quants())


def test_tensor_figures_are_dense_not_sparse() -> None:
    h100 = catalog.hardware("h100-sxm")
    assert h100.dense_flops["bf16"] == pytest.approx(989e12, rel=0.01)
    assert h100.dense_flops["fp8"] == pytest.approx(2 * h100.dense_flops["bf16"], rel=0.01)
    for entry_id, fields in raw("hardware").items():
        dense = catalog.hardware(entry_id).dense_flops
        for dtype, sparse in fields.get("sparse_tflops", {}).items():
            assert dense[dtype] <= sparse * T / 2 * 1.01, f"{entry_id} {dtype} is not the dense figure"


def test_datasheet_units_are_converted_to_base_units() -> None:
    ti = catalog.hardware("rtx-5070-ti")
    assert ti.memory_bytes == 16 * GIB
    assert ti.memory_bandwidth_bytes_per_s == 896e9
    assert ti.interconnect_bandwidth_bytes_per_s == 63e9
    assert catalog.hardware("h100-sxm").interconnect_bandwidth_bytes_per_s == 450e9
    assert ti.tdp_watts == 300
    # per-field sources are keyed by the model's field names, sub-keys fall back to the field
    assert "43.9" in ti.source_of("dense_flops.fp32")
    assert ti.source_of("dense_flops.fp4") == ti.source_of("dense_flops") != ti.source
    assert "PCIe 5.0" in ti.source_of("interconnect_bandwidth_bytes_per_s")
    assert ti.source_of("memory_bytes") == ti.source


def test_cpu_peaks_are_cores_times_clock_times_flop_per_cycle() -> None:
    ryzen = catalog.hardware("ryzen-9-9900x")
    assert ryzen.dense_flops["fp32"] == pytest.approx(12 * 4.4e9 * 64)
    assert ryzen.memory_bandwidth_bytes_per_s == pytest.approx(5600e6 * 8 * 2)
    assert "avx512f" in ryzen.cpu_flags
    assert catalog.hardware("i9-9980hk").memory_bandwidth_bytes_per_s == 41.8e9
    assert "avx512f" not in catalog.hardware("i9-9980hk").cpu_flags
    lunar = catalog.hardware("core-ultra-7-258v")
    npu = catalog.hardware("core-ultra-7-258v-npu")
    assert npu.kind == "npu" and npu.dense_flops["int8"] == 47e12
    assert npu.memory_bytes == lunar.memory_bytes and npu.memory_bandwidth_bytes_per_s == 136.5e9


@pytest.mark.parametrize(
    ("hw", "cc", "fp8", "fp4"),
    [
        ("h100-sxm", "9.0", True, False),
        ("h200", "9.0", True, False),
        ("a100-80gb", "8.0", False, False),
        ("l40s", "8.9", True, False),
        ("rtx-4090", "8.9", True, False),
        ("rtx-3090", "8.6", False, False),
        ("rtx-5090", "12.0", True, True),
        ("rtx-5070-ti", "12.0", True, True),
        ("gtx-1650", "7.5", False, False),
        ("jetson-orin-nano-super", "8.7", False, False),
        ("t4", "7.5", False, False),
        ("l4", "8.9", True, False),
        ("rtx-6000-ada", "8.9", True, False),
    ],
)
def test_gpu_capabilities(hw: str, cc: str, fp8: bool, fp4: bool) -> None:
    h = catalog.hardware(hw)
    assert (h.compute_capability, h.fp8, h.fp4) == (cc, fp8, fp4)
    assert ("fp8" in h.dense_flops) == fp8 and ("fp4" in h.dense_flops) == fp4


def test_jetson_is_a_soc_with_shared_memory() -> None:
    jetson = catalog.hardware("jetson-orin-nano-super")
    assert jetson.kind == "soc" and jetson.unified_memory
    assert jetson.memory_bytes == 8 * GIB and jetson.memory_bandwidth_bytes_per_s == 102e9


@pytest.mark.parametrize(
    ("quant", "ggml_type"),
    [
        ("q8_0", "Q8_0"),
        ("q6_k", "Q6_K"),
        ("q4_0", "Q4_0"),
        ("q4_1", "Q4_1"),
        ("q5_0", "Q5_0"),
        ("q5_1", "Q5_1"),
        ("f16", "F16"),
        ("f32", "F32"),
    ],
)
def test_gguf_block_formats_cost_what_ggml_stores(quant: str, ggml_type: str) -> None:
    block, nbytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[ggml_type]]
    assert catalog.quant(quant).bits_per_weight == nbytes * 8 / block


def test_k_quant_mixes_sit_between_their_parts() -> None:
    def bpw(t: str) -> float:
        block, nbytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[t]]
        return nbytes * 8 / block

    assert bpw("Q4_K") < catalog.quant("q4_k_m").bits_per_weight < bpw("Q6_K")
    assert bpw("Q5_K") < catalog.quant("q5_k_m").bits_per_weight < bpw("Q6_K")
    assert catalog.quant("awq").bits_per_weight == catalog.quant("gptq").bits_per_weight == 4.25


def test_quant_ids_are_case_insensitive_and_fp8_needs_fp8_hardware() -> None:
    assert catalog.quant("Q4_K_M") is catalog.quant("q4_k_m")
    assert catalog.quant("fp8").requires_fp8 and not catalog.quant("bf16").requires_fp8
    assert "llamacpp" in catalog.quant("q4_k_m").engines and "vllm" in catalog.quant("awq").engines


def test_unknown_ids_suggest_the_closest() -> None:
    with pytest.raises(NotFoundError, match="did you mean rtx-5070-ti"):
        catalog.hardware("rtx-5070ti")
    with pytest.raises(NotFoundError, match="did you mean q4_k_m"):
        catalog.quant("q4km")
    with pytest.raises(NotFoundError, match=r"llama-3\.1-8b"):
        catalog.model("llama3.1-8b")
    with pytest.raises(NotFoundError, match=r"did you mean llama-3\.1-8b"):  # a Hugging Face repo id
        catalog.model("meta-llama/Llama-3.1-8B")


def test_models_have_their_config_shapes() -> None:
    gemma = catalog.model("gemma-3-270m")
    assert (gemma.head_dim, gemma.sliding_window, gemma.sliding_window_layers) == (256, 512, 15)
    llama = catalog.model("llama-3.1-8b")
    assert 2 * llama.layers * llama.kv_heads * llama.head_dim * 2 == 131072  # BF16 KV bytes per token
    assert catalog.model("LLAMA-3.1-8B") is llama


def test_data_dir_ships_inside_the_package() -> None:
    assert DATA_DIR.parent == Path(catalog.__file__).parent
