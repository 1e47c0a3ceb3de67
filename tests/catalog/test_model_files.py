"""Reading a model's architecture from the files users have: HF config.json and GGUF headers."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from hf_configs import BY_CATALOG_ID, LLAMA_31_8B

from waveidp import catalog
from waveidp.catalog import ModelSpec
from waveidp.errors import ConfigError

# What a file can tell us, compared with a built-in entry (names and provenance differ by design).
SHAPE = {
    "architecture",
    "params",
    "layers",
    "hidden_size",
    "intermediate_size",
    "attention_heads",
    "kv_heads",
    "head_dim",
    "vocab_size",
    "max_context",
    "tied_embeddings",
    "sliding_window",
    "sliding_window_layers",
}


def shape(spec: ModelSpec) -> dict:
    return spec.model_dump(include=SHAPE)


def write_config(tmp_path: Path, cfg: dict, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(cfg, indent=2))
    return path


@pytest.mark.parametrize("model_id", sorted(BY_CATALOG_ID))
def test_hf_config_matches_the_builtin_entry(tmp_path: Path, model_id: str) -> None:
    spec = catalog.model_from_hf_config(write_config(tmp_path, BY_CATALOG_ID[model_id]))
    assert shape(spec) == shape(catalog.model(model_id))


def test_model_accepts_a_config_path_or_its_directory(tmp_path: Path) -> None:
    model_dir = tmp_path / "Llama-3.1-8B-Instruct"
    model_dir.mkdir()
    write_config(model_dir, LLAMA_31_8B)
    by_dir = catalog.model(str(model_dir))
    assert by_dir.id == "llama-3.1-8b-instruct" and by_dir.source == str(model_dir / "config.json")
    assert shape(catalog.model(model_dir / "config.json")) == shape(by_dir)
    assert shape(by_dir) == shape(catalog.model("llama-3.1-8b"))


def test_multimodal_wrapper_reads_the_text_config(tmp_path: Path) -> None:
    wrapped = {
        "model_type": "gemma3",
        "architectures": ["Gemma3ForConditionalGeneration"],
        "text_config": BY_CATALOG_ID["gemma-3-270m"],
        "vision_config": {"hidden_size": 1152},
    }
    spec = catalog.model_from_hf_config(write_config(tmp_path, wrapped))
    assert shape(spec) == shape(catalog.model("gemma-3-270m"))


def test_mixtral_style_moe_counts_total_and_active_params(tmp_path: Path) -> None:
    moe = {
        **LLAMA_31_8B,
        "model_type": "mixtral",
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "vocab_size": 32000,
        "max_position_embeddings": 32768,
    }
    spec = catalog.model_from_hf_config(write_config(tmp_path, moe))
    # Mixtral 8x7B's published totals: 46.7B parameters, 12.9B active per token.
    assert spec.params == pytest.approx(46.7e9, rel=0.002)
    assert spec.active_params == pytest.approx(12.9e9, rel=0.01)
    assert spec.params_per_token == spec.active_params


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "model_type": "llama",\n  "hidden_size": 4096,,\n}')
    with pytest.raises(ConfigError) as err:
        catalog.model_from_hf_config(path)
    message = str(err.value)
    assert f"{path}:3" in message and "invalid JSON" in message and "\n" not in message


@pytest.mark.parametrize(
    ("field", "value", "expect"),
    [
        ("num_hidden_layers", None, "missing field 'num_hidden_layers'"),
        ("hidden_size", -4096, "field 'hidden_size' must be a positive integer"),
        ("vocab_size", "128256", "field 'vocab_size' must be a positive integer"),
        ("model_type", None, "missing field 'model_type'"),
    ],
)
def test_bad_config_fields_give_one_line_naming_file_and_field(
    tmp_path: Path, field: str, value: object, expect: str
) -> None:
    cfg = {k: v for k, v in LLAMA_31_8B.items() if k != field}
    if value is not None:
        cfg[field] = value
    path = write_config(tmp_path, cfg)
    with pytest.raises(ConfigError) as err:
        catalog.model_from_hf_config(path)
    assert expect in str(err.value) and str(path) in str(err.value) and field in err.value.where


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        catalog.model_from_hf_config(tmp_path / "nope.json")
    with pytest.raises(ConfigError, match=r"no config\.json"):
        catalog.model(str(tmp_path))


def write_gguf(
    path: Path,
    *,
    tied: bool = False,
    sliding_window: int | None = None,
    file_type: gguf.LlamaFileType = gguf.LlamaFileType.ALL_F32,
) -> int:
    """A tiny random-weight llama GGUF: 2 layers, hidden 64, 4 heads (2 KV), vocab 100. Returns params."""
    rng = np.random.default_rng(0)
    hidden, ff, vocab, layers, heads, kv = 64, 128, 100, 2, 4, 2
    head_dim = hidden // heads
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama-test")
    w.add_block_count(layers)
    w.add_context_length(256)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_vocab_size(vocab)
    w.add_file_type(file_type)
    if sliding_window:
        w.add_sliding_window(sliding_window)
    tensors = {"token_embd.weight": (vocab, hidden), "output_norm.weight": (hidden,)}
    if not tied:
        tensors["output.weight"] = (vocab, hidden)
    for i in range(layers):
        shapes = {
            "attn_norm": (hidden,),
            "attn_q": (hidden, hidden),
            "attn_k": (kv * head_dim, hidden),
            "attn_v": (kv * head_dim, hidden),
            "attn_output": (hidden, hidden),
            "ffn_norm": (hidden,),
            "ffn_gate": (ff, hidden),
            "ffn_up": (ff, hidden),
            "ffn_down": (hidden, ff),
        }
        tensors |= {f"blk.{i}.{name}.weight": dims for name, dims in shapes.items()}
    for name, dims in tensors.items():
        w.add_tensor(name, rng.standard_normal(dims).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return sum(int(np.prod(d)) for d in tensors.values())


def test_gguf_header_of_a_generated_file(tmp_path: Path) -> None:
    path = tmp_path / "Tiny-Llama.F32.gguf"
    params = write_gguf(path)
    spec = catalog.model_from_gguf(path)
    assert (spec.architecture, spec.layers, spec.hidden_size, spec.intermediate_size) == ("llama", 2, 64, 128)
    assert (spec.attention_heads, spec.kv_heads, spec.head_dim, spec.vocab_size) == (4, 2, 16, 100)
    assert spec.max_context == 256 and not spec.tied_embeddings and spec.sliding_window is None
    assert spec.params == params
    assert spec.file_quant == "f32" and spec.file_bytes == path.stat().st_size
    assert spec.name == "tiny-llama-test" and spec.id == "tiny-llama.f32"
    assert catalog.model(str(path)) == spec


def test_gguf_tied_output_and_sliding_window(tmp_path: Path) -> None:
    path = tmp_path / "tied.gguf"
    params = write_gguf(path, tied=True, sliding_window=32, file_type=gguf.LlamaFileType.MOSTLY_Q4_K_M)
    spec = catalog.model_from_gguf(path)
    assert spec.tied_embeddings and spec.params == params
    assert (spec.sliding_window, spec.sliding_window_layers) == (32, 2)  # no pattern: every layer windowed
    assert catalog.quant(spec.file_quant or "") is catalog.quant("q4_k_m")


def test_embedded_smollm2_gguf_matches_the_builtin_entry(smollm2_path: Path) -> None:
    spec = catalog.model_from_gguf(smollm2_path)
    assert shape(spec) == shape(catalog.model("smollm2-135m"))
    assert spec.file_quant == "q4_1" and catalog.quant(spec.file_quant).bits_per_weight == 5.0
    assert spec.file_bytes == smollm2_path.stat().st_size
    # a directory holding exactly one GGUF resolves to it
    assert shape(catalog.model(str(smollm2_path.parent))) == shape(spec)


def test_gemma3_gguf_matches_the_builtin_entry(gemma_path: Path) -> None:
    spec = catalog.model_from_gguf(gemma_path)
    assert shape(spec) == shape(catalog.model("gemma-3-270m"))
    assert spec.file_quant == "q4_k_m"


@pytest.mark.parametrize("content", [b"", b"not a gguf file at all" * 10, b"GGUF" + bytes(range(256)) * 4])
def test_garbage_gguf_is_a_config_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.gguf"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        catalog.model_from_gguf(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_gguf_is_a_config_error(tmp_path: Path, smollm2_path: Path) -> None:
    path = tmp_path / "truncated.gguf"
    with smollm2_path.open("rb") as src:
        path.write_bytes(src.read(300_000))  # cuts through the tokenizer arrays of the header
    with pytest.raises(ConfigError, match="not a readable GGUF file"):
        catalog.model(str(path))


def test_gguf_missing_a_shape_key_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "noarch.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(2)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(ConfigError, match=r"llama\.embedding_length"):
        catalog.model_from_gguf(path)


def test_a_rewritten_gguf_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    write_gguf(path)
    assert not catalog.model_from_gguf(path).tied_embeddings
    write_gguf(path, tied=True)
    assert catalog.model_from_gguf(path).tied_embeddings
