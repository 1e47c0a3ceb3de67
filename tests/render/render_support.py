"""Helpers the render tests share (a module of its own: `conftest` names collide between test
folders, so tests never import from it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
