from __future__ import annotations

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
def gemma_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from waveidp.engines.local_files import gemma_model_path

    return gemma_model_path(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    from waveidp.engines.local_files import llama_tool

    return llama_tool("llama-server")


@pytest.fixture(autouse=True)
def _isolated_wave_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAVE_HOME", str(tmp_path / "wave-home"))
