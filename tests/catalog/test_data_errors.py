"""A malformed catalog file gives one line naming file:line and the field, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from waveidp.catalog._data_files import load_hardware, load_models, load_quants
from waveidp.errors import ConfigError

GPU = """\
my-gpu:
  name: Test GPU
  kind: gpu
  vendor: test
  memory_gib: 16
  memory_bandwidth_gb_s: 900
  dense_tflops: {bf16: 100, fp8: 200}
  sparse_tflops: {bf16: 200}
  source: Test datasheet (2025)
"""


def load(tmp_path: Path, text: str, loader=load_hardware):  # type: ignore[no-untyped-def]
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path, loader(path)


def error(tmp_path: Path, text: str, loader=load_hardware) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        loader(path)
    message = str(err.value)
    assert "\n" not in message
    return path, message


def test_a_valid_entry_loads_in_base_units(tmp_path: Path) -> None:
    _, entries = load(tmp_path, GPU)
    gpu = entries["my-gpu"]
    assert gpu.memory_bytes == 16 * 1024**3 and gpu.memory_bandwidth_bytes_per_s == 900e9
    assert gpu.dense_flops == {"bf16": 100e12, "fp8": 200e12}


@pytest.mark.parametrize(
    ("replace", "by", "line", "expect"),
    [
        (
            "memory_bandwidth_gb_s: 900",
            "memory_bandwith_gb_s: 900",
            6,
            "unknown field 'memory_bandwith_gb_s' (did you mean 'memory_bandwidth_gb_s'?)",
        ),
        ("memory_gib: 16", "memory_gib: -16", 5, "must be positive"),
        ("memory_gib: 16", "memory_gib: lots", 5, "expected a number"),
        ("kind: gpu", "kind: tpu", 3, "input should be 'gpu', 'cpu', 'npu' or 'soc'"),
        ("dense_tflops: {bf16: 100, fp8: 200}", "dense_tflops: {bf16: 300}", 7, "exceeds the sparse figure"),
        ("source: Test datasheet (2025)", "source: T", 9, "at least 3 characters"),
        ("  name: Test GPU\n", "", 1, "field required"),
    ],
)
def test_bad_fields_name_file_line_and_field(
    tmp_path: Path, replace: str, by: str, line: int, expect: str
) -> None:
    assert replace in GPU
    path, message = error(tmp_path, GPU.replace(replace, by))
    field = (by or replace).split(":")[0].strip() or "name"
    assert f"{path}:{line}" in message, message
    assert expect in message, message
    assert f"my-gpu.{field}" in message or f"my-gpu.{field.split('_')[0]}" in message, message


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    path, message = error(tmp_path, GPU + GPU)
    assert f"{path}:10" in message and "duplicate key 'my-gpu'" in message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path, message = error(tmp_path, GPU.replace("vendor: test", "vendor: [test"))
    assert "invalid YAML" in message and str(path) in message


def test_a_source_for_a_missing_field_is_refused(tmp_path: Path) -> None:
    path, message = error(tmp_path, GPU + "  sources:\n    tdp_w: Test datasheet (2025)\n")
    assert f"{path}:11" in message and "my-gpu.sources.tdp_w" in message


def test_ids_must_be_lower_case(tmp_path: Path) -> None:
    path, message = error(tmp_path, GPU.replace("my-gpu:", "My-GPU:"))
    assert f"{path}:1" in message and "My-GPU.id" in message


def test_model_and_quant_files_report_the_same_way(tmp_path: Path) -> None:
    model = (
        "tiny:\n  name: Tiny\n  architecture: llama\n  params: 100\n  layers: 0\n  hidden_size: 8\n"
        "  intermediate_size: 16\n  attention_heads: 2\n  kv_heads: 1\n  head_dim: 4\n  vocab_size: 10\n"
        "  max_context: 64\n  source: https://example.org/config.json\n"
    )
    path, message = error(tmp_path, model, load_models)
    assert f"{path}:5" in message and "tiny.layers" in message and "greater than 0" in message
    quant = (
        "q9:\n  name: Q9\n  bits_per_weight: 40\n  family: gguf\n  compute_dtype: int8\n"
        "  engines: [llamacpp]\n  source: made up (2025)\n"
    )
    path, message = error(tmp_path, quant, load_quants)
    assert f"{path}:3" in message and "q9.bits_per_weight" in message
    assert "less than or equal to 32" in message
