"""`wave up`'s and `wave serve`'s keys, each from the environment or generated once and kept
(mode 0600) in WAVE_HOME:

- the gateway's bootstrap API key: `WAVE_API_KEY`, else `WAVE_HOME/gateway.key`;
- the admin key of `/admin` and the console (`resolve_admin_key`): `WAVE_ADMIN_KEY` (or the file or
  Vault path the configuration names), else on a loopback bind `WAVE_HOME/admin.key`, so that
  `wave deploy` and the console on the same machine work out of the box, with a key only the user
  who runs the gateway can read.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from waveidp.fleet.models import GatewayConfig
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


def resolve_admin_key(
    cfg: GatewayConfig, environ: Mapping[str, str] | None = None
) -> tuple[Secret | None, str | None]:
    """(admin key, where it came from) for a gateway of configuration `cfg`: `WAVE_ADMIN_KEY`, or
    the file or Vault path the configuration names (`admin_key_file`, `admin_key_vault`); else on a
    loopback bind the kept `WAVE_HOME/admin.key` (made once). Off loopback nothing is generated: an
    operator names the key. None without authentication."""
    from waveidp.security.transport import is_loopback

    if not cfg.auth:
        return None, None
    env = os.environ if environ is None else environ
    sources = {k: v for k, v in env.items() if k == "WAVE_ADMIN_KEY" or k.startswith("VAULT_")}
    sources["WAVE_ADMIN_KEY_FILE"] = cfg.admin_key_file or ""
    sources["WAVE_ADMIN_KEY_VAULT"] = cfg.admin_key_vault or ""
    given = resolve("WAVE_ADMIN_KEY", env=sources, required=False)
    if given is not None:
        where = cfg.admin_key_file or (cfg.admin_key_vault and f"vault:{cfg.admin_key_vault}")
        return given, where or "WAVE_ADMIN_KEY"
    if not is_loopback(cfg.host):
        return None, None
    key = _kept(admin_key_path(), "wave-admin-", create=True)
    return Secret(str(key), name="admin key"), str(admin_key_path())


def stored_admin_key() -> Secret | None:
    """The admin key a client on this machine uses (`wave deploy`): WAVE_ADMIN_KEY[_FILE|_VAULT],
    else the one the gateway keeps in WAVE_HOME/admin.key, if any."""
    given = resolve("WAVE_ADMIN_KEY", required=False)
    if given is not None:
        return given
    key = _kept(admin_key_path(), "wave-admin-", create=False)
    return Secret(key, name=str(admin_key_path())) if key else None
