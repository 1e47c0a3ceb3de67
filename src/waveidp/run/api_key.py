"""The gateway's bootstrap API key: `WAVE_API_KEY`, else one generated once and kept (mode 0600
from its creation) in `WAVE_HOME/gateway.key`. A key from either place must pass
`check_strength` (32 characters or more, of 10 kinds or more): it opens every model."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from waveidp.paths import wave_home, write_private
from waveidp.security.secrets import Secret, check_strength

KEY_FILE = "gateway.key"


def key_path() -> Path:
    return wave_home() / KEY_FILE


def resolve_api_key() -> tuple[str, str]:
    """(key, where it came from)."""
    env = os.environ.get("WAVE_API_KEY")
    if env:
        return check_strength(Secret(env, name="WAVE_API_KEY")).reveal(), "WAVE_API_KEY"
    path = key_path()
    if path.exists():
        key = path.read_text().strip()
        if key:
            return check_strength(Secret(key, name=f"the key in {path}")).reveal(), str(path)
    key = "wave-" + secrets.token_urlsafe(32)
    write_private(path, key + "\n")
    return key, str(path)
