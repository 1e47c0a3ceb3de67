"""Backend API keys named in the fleet file reach the gateway from Vault, and never its reprs."""

from __future__ import annotations

import hvac
import pytest

from waveidp.errors import ConfigError
from waveidp.fleet.models import Backend, Node
from waveidp.gateway.build import backend_from_fleet

from .conftest import BAO_ROOT_TOKEN

VALUE = "sk-upstream-" + "7" * 24


def test_backend_key_from_vault_kv2(bao_addr: str, monkeypatch: pytest.MonkeyPatch) -> None:
    hvac.Client(url=bao_addr, token=BAO_ROOT_TOKEN).secrets.kv.v2.create_or_update_secret(
        path="wave/cloud", secret={"api_key": VALUE}, mount_point="secret"
    )
    monkeypatch.setenv("VAULT_ADDR", bao_addr)
    monkeypatch.setenv("VAULT_TOKEN", BAO_ROOT_TOKEN)
    b = Backend(
        name="cloud",
        engine="openai",
        url="https://api.example.test/v1",
        models=["gpt-x"],
        api_key_vault="secret/wave/cloud#api_key",
    )
    state = backend_from_fleet(Node(name="n", backends=[b]), b)
    assert state.api_key == VALUE
    assert VALUE not in repr(state) and VALUE not in str(state)

    missing = b.model_copy(update={"api_key_vault": "secret/wave/cloud#nope"})
    with pytest.raises(ConfigError, match="has no field 'nope'") as info:
        backend_from_fleet(Node(name="n", backends=[missing]), missing)
    assert VALUE not in str(info.value)


def test_backend_key_from_env_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUD_KEY", VALUE)
    b = Backend(
        name="cloud",
        engine="openai",
        url="https://api.example.test/v1",
        models=["gpt-x"],
        api_key_env="CLOUD_KEY",
    )
    state = backend_from_fleet(Node(name="n", backends=[b]), b)
    assert state.api_key == VALUE and VALUE not in repr(state)
