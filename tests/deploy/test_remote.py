"""`wave deploy --on NODE/DEVICE` for a node that is not this machine: the fleet file gets the
node's backend, `wave render`'s files follow from it, and the commands to run there are printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from deploy_support import GEMMA, SMOLLM2, shared_store

from support import Ran, run_cli

FLEET = """\
# the fleet under the desk
version: 1
nodes:
  - name: here
    address: 127.0.0.1
    devices:
      - {id: cpu, hardware: cpu-generic}
  - name: gpu-box
    address: 10.0.0.7
    models_dir: /var/lib/wave/models
    devices:
      - {id: cpu, hardware: ryzen-9-9900x}
      - {id: gpu0, hardware: rtx-5070-ti}
gateway:
  node: here
"""


@pytest.fixture(scope="module")
def store(gemma_path: Path, smollm2_path: Path) -> Path:
    return shared_store(gemma_path, smollm2_path)


@pytest.fixture
def wave(store: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("WAVE_MODELS_DIR", str(store))
    return lambda *args: run_cli(capsys, *args)


def test_a_remote_node_gets_its_backend_files_and_commands(tmp_path: Path, store: Path, wave) -> None:  # type: ignore[no-untyped-def]
    fleet, out = tmp_path / "wave.yaml", tmp_path / "out"
    fleet.write_text(FLEET)
    r: Ran = wave(
        "deploy", SMOLLM2, "--name", "chat", "--on", "gpu-box/gpu0", "-f", fleet, "--out", out, "--json"
    )
    assert r.code == 0, r.err
    result = json.loads(r.out)
    assert result["backend"]["url"] == "http://10.0.0.7:8080" and result["backend"]["devices"] == ["gpu0"]

    text = fleet.read_text()
    assert text.startswith("# the fleet under the desk\n")
    (node,) = [n for n in yaml.safe_load(text)["nodes"] if n["name"] == "gpu-box"]
    (backend,) = node["backends"]
    assert backend["engine"] == "llamacpp" and backend["max_concurrency"] == 4
    assert backend["models"] == [{"name": "chat", "model": SMOLLM2, "quant": "q4_1", "context": 4096}]

    compose = yaml.safe_load((out / "gpu-box/docker-compose.yml").read_text())
    engine = compose["services"]["chat"]
    weights = next((store / SMOLLM2).glob("*.gguf")).name
    assert engine["command"][:2] == ["-m", f"/models/{SMOLLM2}/{weights}"]  # the store's own layout
    assert engine["volumes"] == ["${WAVE_MODELS_DIR:-/var/lib/wave/models}:/models:ro"]
    assert "-ngl" in engine["command"] and engine["deploy"]["resources"]["reservations"]["devices"]
    assert (
        tmp_path / "out/gpu-box/.env"
    ).stat().st_mode & 0o777 == 0o600  # the engine's key, as render writes it
    commands = [c["command"] for c in result["commands"]]
    assert f"rsync -a --mkpath {store / SMOLLM2}/ 10.0.0.7:/var/lib/wave/models/{SMOLLM2}/" in commands
    assert "cd wave/gpu-box && docker compose up -d chat" in commands

    # the same name again, another model: the node's backend is replaced, on the same port
    again = wave("deploy", GEMMA, "--name", "chat", "--on", "gpu-box", "-f", fleet, "--out", out)
    assert again.code == 0, again.err
    (node,) = [n for n in yaml.safe_load(fleet.read_text())["nodes"] if n["name"] == "gpu-box"]
    (backend,) = node["backends"]
    assert backend["models"][0]["model"] == GEMMA and backend["url"] == "http://10.0.0.7:8080"
    assert "docker compose up -d chat" in again.out


def test_models_dir_must_be_an_absolute_path(tmp_path: Path, wave) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "wave.yaml").write_text(FLEET.replace("/var/lib/wave/models", "models"))
    r: Ran = wave("deploy", SMOLLM2, "--on", "gpu-box", "-f", tmp_path / "wave.yaml", "--dry-run")
    assert "wave.yaml:10: nodes[1].models_dir: must be an absolute path" in r.error
