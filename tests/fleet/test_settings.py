"""The one configuration contract: flag > WAVE_* environment > fleet file > default, one variable
per setting generated from the model, and the docs listing exactly those."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from waveidp.errors import ConfigError, InputError
from waveidp.fleet.models import GatewayConfig
from waveidp.fleet.settings import env_name, resolve, unknown_variables, variables, variables_table

REPO = Path(__file__).resolve().parents[2]


def test_precedence_is_flag_then_environment_then_file_then_default() -> None:
    file = GatewayConfig(port=5000, workers=2, retries=1)
    env = {"WAVE_PORT": "6000", "WAVE_WORKERS": "3"}
    cfg = resolve(file, env, {"port": 7000, "workers": None})
    assert (cfg.port, cfg.workers, cfg.retries, cfg.total_timeout_s) == (7000, 3, 1, 900.0)
    assert resolve(file, env, {}).port == 6000
    assert resolve(file, {}, {}).port == 5000
    assert resolve(None, {}, {}).port == 4000


def test_every_setting_has_one_variable_read_with_its_type() -> None:
    names = [env_name(f) for f in GatewayConfig.model_fields]
    assert len(set(names)) == len(names) and set(names) <= set(variables())
    env = {
        "WAVE_UPSTREAMS": "http://a:1, http://b:2",
        "WAVE_AUTH": "false",
        "WAVE_LOG_PROMPTS": "yes",
        "WAVE_REDIS_URL": "redis://r:6379/0",
        "WAVE_DATABASE_URL": "postgresql://wave:pw@db:5432/wave",
        "WAVE_REDIS_DOWN_TPM": "open",
        "WAVE_CHUNK_GAP_TIMEOUT_S": "2.5",
        "WAVE_UPSTREAM_KEY_ENV": "",
    }
    cfg = resolve(None, env, {})
    assert cfg.upstreams == ["http://a:1", "http://b:2"] and cfg.auth is False and cfg.log_prompts
    assert cfg.database_url == "postgresql://wave:pw@db:5432/wave" and cfg.redis_down_tpm == "open"
    assert cfg.chunk_gap_timeout_s == 2.5 and cfg.upstream_key_env is None


def test_bad_values_name_where_they_came_from() -> None:
    with pytest.raises(ConfigError, match=r"environment WAVE_PORT: .*integer.*'x'"):
        resolve(None, {"WAVE_PORT": "x"}, {})
    with pytest.raises(ConfigError, match="environment WAVE_REDIS_DOWN_RPM"):
        resolve(None, {"WAVE_REDIS_DOWN_RPM": "sometimes"}, {})
    with pytest.raises(ConfigError, match=r"wave\.yaml: gateway\.database_url holds a password") as err:
        resolve(GatewayConfig(database_url="postgresql://u:hunter2@db/wave"), {}, {}, file_name="wave.yaml")
    assert "hunter2" not in str(err.value) and "WAVE_DATABASE_URL" in str(err.value)
    with pytest.raises(InputError, match="OIDC needs"):
        resolve(None, {"WAVE_OIDC_ISSUER": "https://idp"}, {})
    with pytest.raises(InputError, match="database_url must start with postgresql://"):
        resolve(None, {}, {"database_url": "mysql://db"})
    assert unknown_variables({"WAVE_REDIS_URI": "x", "WAVE_BACKEND_KEY_GPU": "k"}) == [
        "WAVE_REDIS_URI (did you mean WAVE_REDIS_URL?)"
    ]


def test_docs_and_help_list_exactly_the_models_variables() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    table = doc[doc.index("<!-- variables") :].split("\n", 1)[1].strip()
    assert table == variables_table(), (
        "docs/configuration.md is out of date: paste waveidp.fleet.settings.variables_table() "
        "under its <!-- variables --> line"
    )
    out = subprocess.run(
        [sys.executable, "-m", "waveidp", "serve", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=60,
    ).stdout
    for name in variables():
        assert name in out


def test_wave_serve_refuses_a_bad_variable_with_one_line(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "waveidp", "serve", "--upstream", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        env={**os.environ, "WAVE_PORT": "forty"},
        timeout=60,
    )
    assert r.returncode == 2
    assert "environment WAVE_PORT" in r.stderr and "Traceback" not in r.stderr
