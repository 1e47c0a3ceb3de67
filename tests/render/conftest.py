from __future__ import annotations

from pathlib import Path

import pytest
from render_support import HOME_LAB, write_tree

from waveidp import fleet
from waveidp.plan import make_plan
from waveidp.render import fill, render, required_secrets


@pytest.fixture(scope="session")
def home_lab_files() -> dict[str, str]:
    f = fleet.load(HOME_LAB)
    plan = make_plan(f)
    return render(f, plan, "compose", fill(required_secrets(f, plan), {}))


@pytest.fixture(scope="session")
def home_lab_tree(home_lab_files: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tree(tmp_path_factory.mktemp("home-lab"), home_lab_files)
