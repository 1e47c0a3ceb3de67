"""`wave models import / list / show / rm / quantize / quality` with the real llama-quantize and
llama-perplexity on the packaged SmolLM2 (tiny settings: 2 chunks of 128 tokens), and `wave fit`
choosing among the stored formats by their measured quality."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from models_support import tiny_gguf

from support import Ran, run_cli
from waveidp.models import GEMMA_STORE_NAME, ModelStore

pytestmark = pytest.mark.timeout(300)

BASE = "smollm2-135m-instruct-q4_1"


@pytest.fixture
def wave(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Ran]:
    monkeypatch.delenv("WAVE_MODELS_DIR", raising=False)
    return functools.partial(run_cli, capsys)


def ok(result: Ran) -> Ran:
    assert result.code == 0, result.out + result.err
    return result


def store() -> ModelStore:
    return ModelStore()


def test_import_quantize_measure_and_let_fit_choose(wave: Callable[..., Ran], smollm2_path: Path) -> None:
    ok(wave("models", "import", smollm2_path))
    imported = store().get(BASE).manifest
    assert (imported.source.kind, imported.quant, imported.license) == ("local", "q4_1", "apache-2.0")

    made = ok(wave("models", "quantize", BASE, "--to", "F16"))
    assert "second rounding" in " ".join(made.err.split())  # from a quantized file: said, not hidden
    f16 = "smollm2-135m-instruct-f16"
    ok(wave("models", "quantize", f16, "--to", "q8_0,Q2_K"))
    q8, q2 = "smollm2-135m-instruct-q8_0", "smollm2-135m-instruct-q2_k"
    m8 = store().get(q8).manifest
    assert (m8.quant, m8.source.base) == ("q8_0", f16)
    assert m8.source.base_sha256 == store().get(f16).manifest.files[0].sha256
    assert m8.source.command and m8.source.command[-2:] == ["Q8_0", "1"]
    assert store().get(q2).manifest.size < m8.size < store().get(f16).manifest.size

    tiny_run = ("-c", "128", "--chunks", "2")
    judged = wave("models", "quality", q8, q2, "--against", f16, *tiny_run, "--max-kld-p95", "0.5", "--json")
    assert judged.code == 1, judged.err  # Q2_K is refused by the policy
    assert f"refused by the policy (KLD p95 > 0.5): {q2}" in " ".join(judged.err.split())
    rows = {r["model"]: r for r in json.loads(judged.out)}
    assert rows[q8]["accepted"] is True and rows[q2]["accepted"] is False
    assert rows[q8]["tokens"] == 2 * (128 - 1 - 64)
    assert 0 <= rows[q8]["kld_p95"] < rows[q2]["kld_p95"]
    assert rows[q8]["top1_agreement"] > rows[q2]["top1_agreement"]
    assert rows[q8]["ppl_base"] == rows[q2]["ppl_base"] > 1

    shown = json.loads(ok(wave("models", "show", q2, "--json")).out)
    assert shown["quality"][0]["accepted"] is False and shown["quality"][0]["against"] == f16
    assert shown["quality"][0]["kld_p95"] == rows[q2]["kld_p95"]

    # fit: with the stored limit, the fastest format measured within it (Q8_0, not F16); Q2_K is
    # refused whatever its speed; with a limit only the reference meets, the reference
    fit = json.loads(ok(wave("fit", "-m", f16, "--json")).out)
    assert {(r["variant"], r["quant"]) for r in fit} == {(q8, "q8_0")}
    strict = json.loads(ok(wave("fit", "-m", f16, "--json", "--max-kld-p95", "0")).out)
    assert {r["variant"] for r in strict} == {f16}

    listed = [m["name"] for m in json.loads(ok(wave("models", "list", "--json")).out)]
    assert listed == sorted([BASE, f16, q8, q2])
    assert ok(wave("models", "rm", q2)).out.startswith(f"removed {q2}")
    assert not store().has(q2)


def test_bad_input_gets_one_clear_line(wave: Callable[..., Ran], smollm2_path: Path, tmp_path: Path) -> None:
    text = wave("models", "quantize", "nothing", "--to", "Q4_K_M").error
    assert "unknown stored model 'nothing'" in text
    ok(wave("models", "import", smollm2_path))
    text = wave("models", "quantize", BASE, "--to", "Q4_K_N").error
    assert "unknown quantization type 'Q4_K_N'" in text and "Q4_K_M" in text

    other = tiny_gguf(tmp_path / "Other-F32.gguf", vocab=300)
    ok(wave("models", "import", other))
    text = wave("models", "quality", "other-f32", "--against", BASE, "-c", "128").error
    assert "are not the same model" in text and "vocabulary 300" in text

    (tmp_path / "notes.txt").write_text("hello")
    text = wave("models", "import", tmp_path / "notes.txt").error
    assert "is not a .gguf file" in text
    two = tmp_path / "two"
    two.mkdir()
    tiny_gguf(two / "a.gguf")
    tiny_gguf(two / "b.gguf", seed=1)
    text = wave("models", "import", two).error
    assert "2 .gguf files in one model" in text
    text = wave("models", "rm", "smollm2-135m-instruct-q4").error
    assert "did you mean smollm2-135m-instruct-q4_1" in text
    text = wave("models", "import", smollm2_path, "--name", "Bad Name").error
    assert "model name 'Bad Name' is not usable" in text
    assert [m.name for m in store().models()] == ["other-f32", BASE]


def test_a_safetensors_folder_imports_with_its_config(wave: Callable[..., Ran], tmp_path: Path) -> None:
    folder = tmp_path / "Tiny-Llama-HF"
    folder.mkdir()
    config = {
        "model_type": "llama",
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 500,
        "max_position_embeddings": 512,
        "torch_dtype": "bfloat16",
    }
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes(os.urandom(4096))
    (folder / "README.md").write_text("---\nlicense: mit\n---\n")
    shown = json.loads(ok(wave("models", "import", folder, "--json")).out)
    assert (shown["name"], shown["format"], shown["quant"], shown["license"]) == (
        "tiny-llama-hf",
        "safetensors",
        "bf16",
        "mit",
    )
    size = json.loads(ok(wave("size", "-m", "tiny-llama-hf", "-d", "rtx-5070-ti", "--json")).out)
    assert size["engine"] == "vllm" and size["quant"] == "bf16"
    text = wave("models", "quantize", "tiny-llama-hf", "--to", "Q4_K_M").error
    assert "is safetensors, not GGUF" in text


def test_the_packaged_gemma_is_a_store_model(gemma_path: Path) -> None:
    cache = ModelStore(gemma_path.parent.parent)
    m = cache.get(GEMMA_STORE_NAME)
    assert m.weights_path == gemma_path
    assert m.manifest.source.kind == "package"
    assert (m.manifest.architecture, m.manifest.quant) == ("gemma3", "q4_k_m")
