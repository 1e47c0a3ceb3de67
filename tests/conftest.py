from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from waveidp.engines.local_files import embedded_model_path

    return embedded_model_path()


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """Assembled once per machine (253 MB, checked against its sha256 on every use)."""
    from waveidp.models import gemma_model_path

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wave-test-models"
    return gemma_model_path(cache)


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    from waveidp.engines.local_files import llama_tool

    return llama_tool("llama-server")


@pytest.fixture(autouse=True)
def _isolated_wave_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVE_HOME", str(tmp_path / "wave-home"))
