"""`wave up`'s and `wave serve`'s keys, each from the environment or generated once and kept
(mode 0600) in WAVE_HOME:

- the gateway's bootstrap API key: `WAVE_API_KEY`, else `WAVE_HOME/gateway.key`;
- the admin key of `/admin` and the console (`resolve_admin_key`): `WAVE_ADMIN_KEY` (or the file or
  Vault path the configuration names), else on a loopback bind `WAVE_HOME/admin.key`, so that
  `wave deploy` and the console on the same machine work out of the box, with a key only the user
  who runs the gateway can read.

A key given or kept must pass `check_strength` (32 characters or more, of 10 kinds or more).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from waveidp.fleet.models import GatewayConfig
from waveidp.paths import private_file, wave_home, write_private
from waveidp.security.secrets import Secret, check_strength, resolve

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
            private_file(path)  # one an older version left readable
            return key
    if not create:
        return None
    key = prefix + secrets.token_urlsafe(32)
    write_private(path, key + "\n")  # 0600 from its creation
    return key


def resolve_api_key() -> tuple[str, str]:
    """(key, where it came from)."""
    env = os.environ.get("WAVE_API_KEY")
    if env:
        return check_strength(Secret(env, name="WAVE_API_KEY")).reveal(), "WAVE_API_KEY"
    path = key_path()
    key = _kept(path, "wave-", create=True)
    assert key is not None
    return check_strength(Secret(key, name=f"the key in {path}")).reveal(), str(path)


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
        return check_strength(given), where or "WAVE_ADMIN_KEY"
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
