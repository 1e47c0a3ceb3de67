"""The gateway's bootstrap API key (`WAVE_API_KEY`, else one generated once and kept, mode 0600
from its creation, in `WAVE_HOME/gateway.key`) and its admin key (`resolve_admin_key`). A key given
must pass `check_strength` (32 characters or more, of 10 kinds or more)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from waveidp.fleet.models import GatewayConfig
from waveidp.paths import private_file, wave_home, write_private
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


ADMIN_KEY_FILE = "admin.key"


def resolve_admin_key(
    cfg: GatewayConfig, environ: Mapping[str, str] | None = None
) -> tuple[Secret | None, str | None]:
    """(admin key, where it came from): `WAVE_ADMIN_KEY`, or the file or Vault path the
    configuration names (`admin_key_file`, `admin_key_vault`); else on a loopback bind one generated
    once and kept (mode 0600) in `WAVE_HOME/admin.key`, so that `wave up` opens the console and
    `/admin` out of the box. Off loopback nothing is generated: an operator names the key. None
    without authentication."""
    from waveidp.security.secrets import resolve
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
    path = wave_home() / ADMIN_KEY_FILE
    key = path.read_text().strip() if path.exists() else ""
    if not key:
        key = "wave-admin-" + secrets.token_urlsafe(32)
        write_private(path, key + "\n")
    else:
        private_file(path)  # one an older version left readable
    return Secret(key, name="admin key"), str(path)
