from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from waveidp import fleet
from waveidp.plan import make_plan
from waveidp.render import fill, render, required_secrets

HOME_LAB = Path(__file__).resolve().parents[2] / "examples" / "home-lab.yaml"


def needs(tool: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        shutil.which(tool) is None, reason=f"{tool} is not installed (make system-deps)"
    )


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def home_lab_files() -> dict[str, str]:
    f = fleet.load(HOME_LAB)
    plan = make_plan(f)
    return render(f, plan, "compose", fill(required_secrets(f, plan), {}))


@pytest.fixture(scope="session")
def home_lab_tree(home_lab_files: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tree(tmp_path_factory.mktemp("home-lab"), home_lab_files)
