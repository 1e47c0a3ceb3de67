"""`wave up`'s keys, each from the environment or generated once and kept (mode 0600) in WAVE_HOME:

- the gateway's single API key: `WAVE_API_KEY`, else `WAVE_HOME/gateway.key`;
- the admin key of `/admin` (`wave deploy`, `/admin/keys`): `WAVE_ADMIN_KEY` (or `_FILE`, `_VAULT`),
  else `WAVE_HOME/admin.key`, so that `wave deploy` on the same machine works as `ollama run` does,
  with a key only the user who runs `wave up` can read.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from waveidp.paths import wave_home
from waveidp.security.secrets import Secret, resolve

KEY_FILE = "gateway.key"
ADMIN_KEY_FILE = "admin.key"


def key_path() -> Path:
    return wave_home() / KEY_FILE


def admin_key_path() -> Path:
    return wave_home() / ADMIN_KEY_FILE


def _kept(path: Path, prefix: str, *, create: bool) -> str | None:
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    if not create:
        return None
    key = prefix + secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def resolve_api_key() -> tuple[str, str]:
    """(key, where it came from)."""
    env = os.environ.get("WAVE_API_KEY")
    if env:
        return env, "WAVE_API_KEY"
    path = key_path()
    key = _kept(path, "wave-", create=True)
    assert key is not None
    return key, str(path)


def resolve_admin_key(*, create: bool) -> Secret | None:
    """The admin key from WAVE_ADMIN_KEY[_FILE|_VAULT], else the kept one (made if `create`)."""
    given = resolve("WAVE_ADMIN_KEY", required=False)
    if given is not None:
        return given
    key = _kept(admin_key_path(), "wave-admin-", create=create)
    return Secret(key, name=str(admin_key_path())) if key else None
