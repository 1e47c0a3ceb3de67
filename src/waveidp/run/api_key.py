"""The gateway's single API key: `WAVE_API_KEY`, else one generated once and kept (mode 0600)
in `WAVE_HOME/gateway.key`."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from waveidp.paths import wave_home
from waveidp.security.secrets import Secret

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


ADMIN_KEY_FILE = "admin.key"


def resolve_admin_key(host: str) -> tuple[Secret | None, str | None]:
    """(admin key, where it came from): `WAVE_ADMIN_KEY` / `_FILE` / `_VAULT`, else on a loopback bind
    one generated once and kept (mode 0600) in `WAVE_HOME/admin.key`, so that `wave up` opens the
    console and `/admin` out of the box. Off loopback nothing is generated: an operator names the key."""
    from waveidp.security.secrets import resolve
    from waveidp.security.transport import is_loopback

    given = resolve("WAVE_ADMIN_KEY", required=False)
    if given is not None:
        return given, "WAVE_ADMIN_KEY"
    if not is_loopback(host):
        return None, None
    path = wave_home() / ADMIN_KEY_FILE
    key = path.read_text().strip() if path.exists() else ""
    if not key:
        key = "wave-admin-" + secrets.token_urlsafe(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
    os.chmod(path, 0o600)
    return Secret(key, name="admin key"), str(path)
