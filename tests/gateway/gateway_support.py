"""Constants and helpers the gateway tests share (a module of its own: `conftest` names collide
between test folders, so tests never import from it)."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
API_KEY = "test-key-123"
WAVE = Path(sys.executable).with_name("wave")


def auth() -> dict[str, str]:
    return {"authorization": f"Bearer {API_KEY}"}
