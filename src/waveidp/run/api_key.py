"""The gateway's single API key: `WAVE_API_KEY`, else one generated once and kept (mode 0600)
in `WAVE_HOME/gateway.key`."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from waveidp.paths import wave_home

KEY_FILE = "gateway.key"


def key_path() -> Path:
    return wave_home() / KEY_FILE


def resolve_api_key() -> tuple[str, str]:
    """(key, where it came from)."""
    env = os.environ.get("WAVE_API_KEY")
    if env:
        return env, "WAVE_API_KEY"
    path = key_path()
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key, str(path)
    key = "wave-" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.chmod(path, 0o600)
    return key, str(path)
