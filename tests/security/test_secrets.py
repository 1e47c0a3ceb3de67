from __future__ import annotations

import logging
import pickle
from pathlib import Path

import hvac
import pytest

from waveidp.errors import ConfigError
from waveidp.security.secrets import Secret, resolve, resolve_backend_key

from .conftest import BAO_ROOT_TOKEN

VALUE = "sk-live-0123456789abcdef"


def test_secret_never_shows_its_value(caplog: pytest.LogCaptureFixture) -> None:
    s = Secret(VALUE, name="backend key")
    shown = [repr(s), str(s), f"{s}", f"{s!r}", f"{s}", str([s]), str({"k": s})]
    with caplog.at_level(logging.INFO):
        logging.getLogger("t").info("using %s", s)
    assert all(VALUE not in text for text in [*shown, caplog.text])
    assert s.reveal() == VALUE and s.matches(VALUE) and not s.matches(VALUE + "x")
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_env_then_file(tmp_path: Path) -> None:
    f = tmp_path / "admin.key"
    f.write_text(VALUE + "\n")
    assert resolve("WAVE_ADMIN_KEY", env={"WAVE_ADMIN_KEY": "from-env"}).reveal() == "from-env"  # type: ignore[union-attr]
    assert resolve("WAVE_ADMIN_KEY", env={"WAVE_ADMIN_KEY_FILE": str(f)}).reveal() == VALUE  # type: ignore[union-attr]
    assert resolve("WAVE_ADMIN_KEY", env={}, required=False) is None
    with pytest.raises(ConfigError, match="WAVE_ADMIN_KEY_FILE or WAVE_ADMIN_KEY_VAULT"):
        resolve("WAVE_ADMIN_KEY", env={})
    with pytest.raises(ConfigError, match="cannot read WAVE_ADMIN_KEY from"):
        resolve("WAVE_ADMIN_KEY", env={"WAVE_ADMIN_KEY_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="OPENAI_KEY"):
        resolve_backend_key(env_var="OPENAI_KEY", file=None, vault_ref=None, backend="cloud", env={})


def test_vault_kv2_through_a_real_openbao_server(bao_addr: str) -> None:
    root = hvac.Client(url=bao_addr, token=BAO_ROOT_TOKEN)
    root.secrets.kv.v2.create_or_update_secret(
        path="wave/backends", secret={"openai": VALUE, "empty": ""}, mount_point="secret"
    )
    env = {
        "VAULT_ADDR": bao_addr,
        "VAULT_TOKEN": BAO_ROOT_TOKEN,
        "WAVE_ADMIN_KEY_VAULT": "secret/wave/backends#openai",
    }
    got = resolve("WAVE_ADMIN_KEY", env=env)
    assert got is not None and got.reveal() == VALUE and VALUE not in repr(got)
    key = resolve_backend_key(
        env_var=None, file=None, vault_ref="secret/wave/backends#openai", backend="cloud", env=env
    )
    assert key is not None and key.reveal() == VALUE

    errors = {
        "secret/wave/backends#nope": "has no field 'nope'",
        "secret/wave/missing#openai": "no secret at secret/wave/missing",
        "secret/wave/backends#empty": "is empty",
        "wave-backends-openai": "malformed",
    }
    for ref, message in errors.items():
        with pytest.raises(ConfigError, match=message) as info:
            resolve("WAVE_ADMIN_KEY", env={**env, "WAVE_ADMIN_KEY_VAULT": ref})
        assert VALUE not in str(info.value)

    with pytest.raises(ConfigError, match=r"may not read|failed") as info:
        resolve("WAVE_ADMIN_KEY", env={**env, "VAULT_TOKEN": "not-a-token"})
    assert "not-a-token" not in str(info.value)


def test_vault_token_from_file(bao_addr: str, tmp_path: Path) -> None:
    root = hvac.Client(url=bao_addr, token=BAO_ROOT_TOKEN)
    root.secrets.kv.v2.create_or_update_secret(
        path="wave/admin", secret={"key": "adm-1"}, mount_point="secret"
    )
    token_file = tmp_path / "token"
    token_file.write_text(BAO_ROOT_TOKEN)
    env = {
        "VAULT_ADDR": bao_addr,
        "VAULT_TOKEN_FILE": str(token_file),
        "WAVE_ADMIN_KEY_VAULT": "secret/wave/admin#key",
    }
    assert resolve("WAVE_ADMIN_KEY", env=env).reveal() == "adm-1"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="VAULT_ADDR"):
        resolve("WAVE_ADMIN_KEY", env={"WAVE_ADMIN_KEY_VAULT": "secret/wave/admin#key"})
