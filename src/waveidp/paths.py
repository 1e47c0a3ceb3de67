"""Where Wave keeps its state on this machine."""

from __future__ import annotations

import os
from pathlib import Path


def wave_home() -> Path:
    """`WAVE_HOME`, default `~/.local/share/wave`; created on first use."""
    home = Path(os.environ.get("WAVE_HOME") or Path.home() / ".local" / "share" / "wave")
    home.mkdir(parents=True, exist_ok=True)
    return home


def models_dir() -> Path:
    """The model store: `WAVE_MODELS_DIR`, default `WAVE_HOME/models` (not created here)."""
    return Path(os.environ.get("WAVE_MODELS_DIR") or wave_home() / "models").expanduser()
